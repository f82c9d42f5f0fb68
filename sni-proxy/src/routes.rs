//! [`Routes`]: what happens to a connection, chosen by its SNI.

use std::{collections::HashMap, net::SocketAddr};

use arc_swap::ArcSwap;

use crate::names::exact_then_wildcard;

/// What the TLS listener does with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// TLS ends here (certificate from the resolver); the plaintext stream is
    /// forwarded to this upstream unchanged (HTTP/1.1, HTTP/2 or anything else).
    Terminate(SocketAddr),
    /// The raw TLS bytes, ClientHello included, are spliced to this backend,
    /// which terminates TLS itself.
    Passthrough(SocketAddr),
}

/// How a name is stored: lowercase, without trailing dots.
fn route_key(name: &str) -> Box<str> {
    name.trim_end_matches('.').to_ascii_lowercase().into()
}

type Map = HashMap<Box<str>, Route, foldhash::fast::RandomState>;

/// One immutable version of the table.
#[derive(Debug, Clone)]
struct Table {
    map: Map,
    default: Route,
    /// How many routes (default included) pass through.
    passthroughs: usize,
}

impl Table {
    fn recount(mut self) -> Self {
        let is_pass = |r: &Route| matches!(r, Route::Passthrough(_));
        self.passthroughs =
            self.map.values().filter(|r| is_pass(r)).count() + usize::from(is_pass(&self.default));
        self
    }
}

/// Routes by server name: exact name, then the single-level wildcard
/// (`*.example.com` covers `a.example.com`, never `a.b.example.com`), then the
/// default. Lookups take no lock; updates swap the table (routes change
/// rarely, so copy-on-write of the whole map is fine).
///
/// ```
/// use sni_proxy::{Route, Routes};
/// let routes = Routes::new(Route::Terminate("127.0.0.1:8000".parse().unwrap()));
/// routes.set("*.pass.example", Route::Passthrough("127.0.0.1:9443".parse().unwrap()));
/// assert_eq!(routes.route("a.pass.example"), Route::Passthrough("127.0.0.1:9443".parse().unwrap()));
/// assert_eq!(routes.route("shop.example.com"), Route::Terminate("127.0.0.1:8000".parse().unwrap()));
/// ```
#[derive(Debug)]
pub struct Routes {
    table: ArcSwap<Table>,
}

impl Routes {
    /// A table where every name takes `default`.
    #[must_use]
    pub fn new(default: Route) -> Self {
        let table = Table { map: Map::default(), default, passthroughs: 0 }.recount();
        Self { table: ArcSwap::from_pointee(table) }
    }

    /// Routes `name` (exact, or `*.suffix` for one level) to `route`,
    /// replacing any previous route for it.
    pub fn set(&self, name: &str, route: Route) {
        self.set_many([(name.to_owned(), route)]);
    }

    /// Sets many routes with one swap of the table (loading thousands of
    /// names one by one would copy the table each time).
    pub fn set_many(&self, routes: impl IntoIterator<Item = (String, Route)>) {
        let new: Vec<(Box<str>, Route)> =
            routes.into_iter().map(|(name, route)| (route_key(&name), route)).collect();
        self.table.rcu(|table| {
            let mut table = Table::clone(table);
            table.map.extend(new.iter().cloned());
            table.recount()
        });
    }

    /// Removes the route of `name`; it takes the wildcard or default again.
    pub fn remove(&self, name: &str) {
        let key = route_key(name);
        self.table.rcu(|table| {
            let mut table = Table::clone(table);
            table.map.remove(&key);
            table.recount()
        });
    }

    /// Replaces the default route.
    pub fn set_default(&self, route: Route) {
        self.table.rcu(|table| Table { default: route, ..Table::clone(table) }.recount());
    }

    /// The route for `sni`.
    #[must_use]
    pub fn route(&self, sni: &str) -> Route {
        let table = self.table.load();
        if table.map.is_empty() {
            return table.default;
        }
        exact_then_wildcard(sni, |name| table.map.get(name).copied()).unwrap_or(table.default)
    }

    /// Whether any name (or the default) is passed through: only then does
    /// the listener peek at the ClientHello before the handshake.
    #[must_use]
    pub fn has_passthrough(&self) -> bool {
        self.table.load().passthroughs > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn exact_then_wildcard_then_default() {
        let routes = Routes::new(Route::Terminate(addr(1)));
        routes.set("*.example.com", Route::Passthrough(addr(2)));
        routes.set("Shop.Example.com.", Route::Terminate(addr(3)));
        assert_eq!(routes.route("shop.example.com"), Route::Terminate(addr(3)));
        assert_eq!(routes.route("SHOP.example.com"), Route::Terminate(addr(3)));
        assert_eq!(routes.route("a.example.com"), Route::Passthrough(addr(2)));
        assert_eq!(routes.route("a.b.example.com"), Route::Terminate(addr(1)));
        assert_eq!(routes.route("example.com"), Route::Terminate(addr(1)));
        assert!(routes.has_passthrough());
        routes.set_many([("x.test".to_owned(), Route::Terminate(addr(5)))]);
        assert_eq!(routes.route("X.test"), Route::Terminate(addr(5)));
        routes.remove("*.example.com");
        assert_eq!(routes.route("a.example.com"), Route::Terminate(addr(1)));
        assert!(!routes.has_passthrough());
        routes.set_default(Route::Passthrough(addr(4)));
        assert!(routes.has_passthrough());
        assert_eq!(routes.route("other.test"), Route::Passthrough(addr(4)));
    }
}

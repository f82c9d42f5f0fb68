//! [`LocalZone`]: an in-process authoritative DNS server (hickory-server)
//! whose records are written through [`DnsProvider`] — for development
//! without public DNS, and for tests.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use async_trait::async_trait;
use hickory_proto::rr::{
    LowerName, Name, RData, Record, RecordSet, RecordType, RrKey,
    rdata::{A, AAAA, CNAME, SOA, TXT},
};
use hickory_server::{
    Server,
    store::in_memory::InMemoryZoneHandler,
    zone_handler::{AxfrPolicy, Catalog, ZoneType},
};

use crate::{DnsProvider, DnsRecord, ProviderError, RecordData};

/// Why a [`LocalZone`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalZoneError {
    /// A listener could not be bound.
    #[error("cannot bind the local DNS server on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The zone could not be made.
    #[error("cannot make the local zone: {0}")]
    Zone(String),
}

/// An authoritative server for every name (it serves the root zone),
/// answering on UDP and TCP at one address, with records added and removed
/// through its [`DnsProvider`] implementation. Served until dropped.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use dns_verify::{DnsProvider, DnsRecord, LocalZone};
/// let zone = LocalZone::start("127.0.0.1:0".parse().unwrap()).await?;
/// zone.create(&DnsRecord::txt("_customdomain-challenge.shop.example.com", "token")).await?;
/// println!("dig @{} -p {} TXT _customdomain-challenge.shop.example.com", zone.addr().ip(), zone.addr().port());
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub struct LocalZone {
    handler: Arc<InMemoryZoneHandler>,
    addr: SocketAddr,
    _server: Server<Catalog>,
}

impl std::fmt::Debug for LocalZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalZone").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// Serial of every change (the zone is never transferred).
const SERIAL: u32 = 1;

fn fqdn(name: &str) -> Result<Name, ProviderError> {
    let mut n = Name::from_ascii(name).map_err(|e| ProviderError::invalid_name(name).with_source(e))?;
    n.set_fqdn(true);
    Ok(n)
}

/// `record` as hickory's record.
fn to_record(record: &DnsRecord) -> Result<Record, ProviderError> {
    let data = match &record.data {
        RecordData::Txt(v) => RData::TXT(TXT::new(crate::txt_strings(v))),
        RecordData::Cname(t) => RData::CNAME(CNAME(fqdn(t)?)),
        RecordData::A(ip) => RData::A(A(*ip)),
        RecordData::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
    };
    Ok(Record::from_rdata(fqdn(&record.name)?, record.ttl, data))
}

impl LocalZone {
    /// Starts serving at `addr` (port 0: any free port; see [`addr`](Self::addr)).
    ///
    /// # Errors
    /// [`LocalZoneError`] when the address cannot be bound.
    pub async fn start(addr: SocketAddr) -> Result<Self, LocalZoneError> {
        let (udp, tcp, addr) = bind_pair(addr).await?;
        let root = Name::root();
        let soa = Record::from_rdata(
            root.clone(),
            60,
            RData::SOA(SOA::new(
                Name::from_ascii("ns.local-zone.").map_err(|e| LocalZoneError::Zone(e.to_string()))?,
                Name::from_ascii("hostmaster.local-zone.")
                    .map_err(|e| LocalZoneError::Zone(e.to_string()))?,
                SERIAL,
                3600,
                600,
                86_400,
                0,
            )),
        );
        let mut records = BTreeMap::new();
        let mut soa_set = RecordSet::new(root.clone(), RecordType::SOA, SERIAL);
        soa_set.insert(soa, SERIAL);
        records.insert(RrKey::new(LowerName::new(&root), RecordType::SOA), soa_set);
        let handler = Arc::new(
            InMemoryZoneHandler::new(root.clone(), records, ZoneType::Primary, AxfrPolicy::Deny)
                .map_err(LocalZoneError::Zone)?,
        );
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&root), vec![Arc::clone(&handler) as _]);
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 4096);
        Ok(Self { handler, addr, _server: server })
    }

    /// Where it answers (UDP and TCP).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

#[async_trait]
impl DnsProvider for LocalZone {
    async fn create(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        if let Some(conflict) = crate::cname_conflict(record, &self.list(&record.name).await?) {
            return Err(conflict);
        }
        // `false` only means nothing changed: the record is there already.
        self.handler.upsert(to_record(record)?, SERIAL).await;
        Ok(())
    }

    async fn delete(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        let rr = to_record(record)?;
        let key = RrKey::new(LowerName::new(&rr.name), rr.record_type());
        let mut records = self.handler.records_mut().await;
        if let Some(set) = records.get_mut(&key) {
            let set = Arc::make_mut(set);
            set.remove(&rr, SERIAL);
            if set.is_empty() {
                records.remove(&key);
            }
        }
        Ok(())
    }

    async fn list(&self, name: &str) -> Result<Vec<DnsRecord>, ProviderError> {
        let owner = LowerName::new(&fqdn(name)?);
        let records = self.handler.records().await;
        Ok(records
            .iter()
            .filter(|(key, _)| key.name == owner)
            .flat_map(|(_, set)| set.records_without_rrsigs())
            .filter_map(|r| crate::provider::record_of(name, r))
            .collect())
    }
}

/// A UDP socket and a TCP listener on the same port. With port 0, the
/// port the system picks for UDP may be taken for TCP by another process:
/// then another port is tried (a few times).
async fn bind_pair(
    addr: SocketAddr,
) -> Result<(tokio::net::UdpSocket, tokio::net::TcpListener, SocketAddr), LocalZoneError> {
    let mut attempts = 0;
    loop {
        let udp = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|source| LocalZoneError::Bind { addr, source })?;
        let bound = udp.local_addr().map_err(|source| LocalZoneError::Bind { addr, source })?;
        match tokio::net::TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp, bound)),
            Err(e) if addr.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse && attempts < 20 => {
                attempts += 1;
            }
            Err(source) => return Err(LocalZoneError::Bind { addr: bound, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Authorities, Checker, Expectation, RecordStatus};

    #[tokio::test]
    async fn records_written_are_seen_by_the_checker_and_deleted_ones_are_missing() {
        let zone = LocalZone::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let checker = Checker::builder().authorities(Authorities::fixed(vec![zone.addr()])).build();
        let host = crate::Hostname::parse("shop.customer.example").unwrap();
        let expect = Expectation::OwnershipTxt { host: host.clone(), token: "tok-1".into() };
        assert_eq!(checker.check(std::slice::from_ref(&expect)).await[0].status, RecordStatus::Missing);
        let record = DnsRecord::txt("_customdomain-challenge.shop.customer.example", "tok-1");
        zone.create(&record).await.unwrap();
        zone.create(&record).await.unwrap(); // idempotent
        assert_eq!(checker.check(std::slice::from_ref(&expect)).await[0].status, RecordStatus::Valid);
        zone.delete(&record).await.unwrap();
        zone.delete(&record).await.unwrap(); // deleting what is gone succeeds
        assert_eq!(checker.check(std::slice::from_ref(&expect)).await[0].status, RecordStatus::Missing);
    }
}

//! `Debug` for the clients, which hold credentials: the fields that say
//! which account and endpoint, never the key, token or secret.

/// `impl Debug for $client` showing only the listed fields (and `..`).
macro_rules! debug_without_secrets {
    ($client:ident { $($field:ident),+ $(,)? }) => {
        impl std::fmt::Debug for $client {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($client))
                    $(.field(stringify!($field), &self.$field))+
                    .finish_non_exhaustive()
            }
        }
    };
}
pub(crate) use debug_without_secrets;

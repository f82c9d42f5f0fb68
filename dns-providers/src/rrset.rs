//! Create, delete and replace for APIs that write a whole record set (all
//! values of one name and type) at once: PowerDNS, GoDaddy, Route 53 and
//! Namecheap. Each reads what is there first, so every change is idempotent
//! and a CNAME never lands beside other data.

use async_trait::async_trait;
use dns_verify::{DnsRecord, ProviderError, RecordData, cname_conflict, same_type};

use crate::text::{bare, data_of, holds};

/// An API that lists a name and writes whole record sets.
#[async_trait]
pub(crate) trait RrsetApi: Send + Sync {
    /// The records at `name`.
    async fn list_name(&self, name: &str) -> Result<Vec<DnsRecord>, ProviderError>;

    /// Makes the set `set` describes exactly its `values`.
    async fn write_set(&self, set: &SetWrite<'_>) -> Result<(), ProviderError>;
}

/// One whole-set write: the records of `name` of `kind`'s type become
/// exactly `values` (none: delete the set).
pub(crate) struct SetWrite<'a> {
    /// The owner name, bare.
    pub name: &'a str,
    /// A value of the set's type.
    pub kind: &'a RecordData,
    /// The set's TTL.
    pub ttl: u32,
    /// The set's values after the write.
    pub values: &'a [RecordData],
    /// The set as it is now.
    pub before: &'a [DnsRecord],
}

impl SetWrite<'_> {
    /// `<TYPE> <name>`, what a failed write says it was doing.
    pub fn what(&self) -> String {
        format!("{} {}", self.kind.type_name(), self.name)
    }
}

/// The records among `items` (one zone's, with zone-relative names) whose
/// name is `rel`, named `name`; `parts` gives an item's relative name, type,
/// unquoted value and TTL. Items of types this crate does not handle are left
/// out.
pub(crate) fn named<T>(
    items: &[T],
    name: &str,
    rel: &str,
    parts: impl Fn(&T) -> (&str, &str, &str, u32),
) -> Vec<DnsRecord> {
    items
        .iter()
        .map(parts)
        .filter(|(at, ..)| at.eq_ignore_ascii_case(rel))
        .filter_map(|(_, kind, value, ttl)| {
            Some(DnsRecord { name: bare(name), ttl, data: data_of(kind, value, false)? })
        })
        .collect()
}

/// `impl DnsProvider` for an [`RrsetApi`]: create, delete and replace
/// through this module, list through [`RrsetApi::list_name`].
macro_rules! dns_provider {
    ($api:ty) => {
        #[async_trait::async_trait]
        impl dns_verify::DnsProvider for $api {
            async fn create(&self, record: &dns_verify::DnsRecord) -> Result<(), dns_verify::ProviderError> {
                $crate::rrset::create(self, record).await
            }

            async fn delete(&self, record: &dns_verify::DnsRecord) -> Result<(), dns_verify::ProviderError> {
                $crate::rrset::delete(self, record).await
            }

            async fn list(
                &self,
                name: &str,
            ) -> Result<Vec<dns_verify::DnsRecord>, dns_verify::ProviderError> {
                $crate::rrset::RrsetApi::list_name(self, name).await
            }

            async fn replace(&self, record: &dns_verify::DnsRecord) -> Result<(), dns_verify::ProviderError> {
                $crate::rrset::replace(self, record).await
            }
        }
    };
}
pub(crate) use dns_provider;

fn of_type<'a>(records: &'a [DnsRecord], kind: &RecordData) -> Vec<&'a DnsRecord> {
    records.iter().filter(|r| same_type(&r.data, kind)).collect()
}

/// Makes `record`'s set, which is `set` now, `values` with `ttl`.
async fn write(
    api: &dyn RrsetApi,
    record: &DnsRecord,
    ttl: u32,
    values: &[RecordData],
    set: Vec<&DnsRecord>,
) -> Result<(), ProviderError> {
    let before: Vec<DnsRecord> = set.into_iter().cloned().collect();
    let name = bare(&record.name);
    api.write_set(&SetWrite { name: &name, kind: &record.data, ttl, values, before: &before }).await
}

/// Adds `record` to its set.
pub(crate) async fn create(api: &dyn RrsetApi, record: &DnsRecord) -> Result<(), ProviderError> {
    let existing = api.list_name(&record.name).await?;
    if holds(&existing, record) {
        return Ok(());
    }
    if let Some(conflict) = cname_conflict(record, &existing) {
        return Err(conflict);
    }
    let set = of_type(&existing, &record.data);
    let mut values: Vec<RecordData> = set.iter().map(|r| r.data.clone()).collect();
    if matches!(record.data, RecordData::Cname(_)) {
        // One CNAME per name: a new target replaces the old.
        values.clear();
    }
    values.push(record.data.clone());
    write(api, record, record.ttl, &values, set).await
}

/// Removes `record` from its set; absent is done.
pub(crate) async fn delete(api: &dyn RrsetApi, record: &DnsRecord) -> Result<(), ProviderError> {
    let existing = api.list_name(&record.name).await?;
    if !holds(&existing, record) {
        return Ok(());
    }
    let set = of_type(&existing, &record.data);
    let ttl = set.first().map_or(record.ttl, |r| r.ttl);
    let values: Vec<RecordData> =
        set.iter().filter(|r| r.data != record.data).map(|r| r.data.clone()).collect();
    write(api, record, ttl, &values, set).await
}

/// Makes `record` the only one of its type at its name.
pub(crate) async fn replace(api: &dyn RrsetApi, record: &DnsRecord) -> Result<(), ProviderError> {
    let existing = api.list_name(&record.name).await?;
    let set = of_type(&existing, &record.data);
    if set.len() == 1 && set[0].data == record.data && set[0].ttl == record.ttl {
        return Ok(());
    }
    if let Some(conflict) = cname_conflict(record, &existing) {
        return Err(conflict);
    }
    write(api, record, record.ttl, std::slice::from_ref(&record.data), set).await
}

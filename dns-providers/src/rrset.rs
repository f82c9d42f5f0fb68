//! Create, delete and replace for APIs that write a whole record set (all
//! values of one name and type) at once: PowerDNS, GoDaddy, Route 53 and
//! Namecheap. Each reads what is there first, so every change is idempotent
//! and a CNAME never lands beside other data.

use async_trait::async_trait;
use dns_verify::{DnsRecord, ProviderError, RecordData, cname_conflict, same_type};

use crate::text::{bare, holds};

/// An API that lists a name and writes whole record sets.
#[async_trait]
pub(crate) trait RrsetApi: Send + Sync {
    /// The records at `name`.
    async fn list_name(&self, name: &str) -> Result<Vec<DnsRecord>, ProviderError>;

    /// Makes the records of `name`/`kind`'s type exactly `values` (none:
    /// delete the set). `before` is the set as it is now.
    async fn write_set(
        &self,
        name: &str,
        kind: &RecordData,
        ttl: u32,
        values: &[RecordData],
        before: &[DnsRecord],
    ) -> Result<(), ProviderError>;
}

fn of_type<'a>(records: &'a [DnsRecord], kind: &RecordData) -> Vec<&'a DnsRecord> {
    records.iter().filter(|r| same_type(&r.data, kind)).collect()
}

fn owned(records: Vec<&DnsRecord>) -> Vec<DnsRecord> {
    records.into_iter().cloned().collect()
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
    api.write_set(&bare(&record.name), &record.data, record.ttl, &values, &owned(set)).await
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
    api.write_set(&bare(&record.name), &record.data, ttl, &values, &owned(set)).await
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
    api.write_set(
        &bare(&record.name),
        &record.data,
        record.ttl,
        std::slice::from_ref(&record.data),
        &owned(set),
    )
    .await
}

//! [`ZoneProvider`]: a `dns_verify::DnsProvider` of your own.
//!
//! The shape most DNS-host integrations take: the provider owns one zone
//! (refusing names outside it), keeps the records it wrote so that a second
//! `create` of the same record and a `delete` of a record that is not there
//! are successes without a call to the DNS host, writes through to the DNS
//! host (any other `DnsProvider` here — in your code, its HTTP API), and keeps
//! a journal of every change it made.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use dns_verify::{DnsProvider, DnsRecord, ProviderError, RecordData};
use tokio::sync::Mutex;

/// One change written to the DNS host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A record was added.
    Created(DnsRecord),
    /// A record was removed.
    Deleted(DnsRecord),
}

#[derive(Default)]
struct State {
    /// Owner name (lowercase, no trailing dot) → the record data there.
    records: BTreeMap<String, BTreeSet<RecordData>>,
    journal: Vec<Change>,
}

/// Writes the records of one zone through `host`, keeping its own copy and
/// a journal of changes.
pub struct ZoneProvider {
    zone: String,
    host: Arc<dyn DnsProvider>,
    /// Held across the call to the host, so the copy and the host agree.
    state: Mutex<State>,
}

impl ZoneProvider {
    /// A provider for `zone` (e.g. `acme.example.net`) writing through `host`.
    pub fn new(zone: &str, host: Arc<dyn DnsProvider>) -> Self {
        Self { zone: normalize(zone), host, state: Mutex::default() }
    }

    /// Every change made so far, oldest first.
    pub async fn journal(&self) -> Vec<Change> {
        self.state.lock().await.journal.clone()
    }

    /// The record data this provider has written at `name`.
    pub async fn records(&self, name: &str) -> Vec<RecordData> {
        self.state
            .lock()
            .await
            .records
            .get(&normalize(name))
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `record`'s owner name, normalised, if it lies inside the zone.
    fn owner(&self, record: &DnsRecord) -> Result<String, ProviderError> {
        let name = normalize(&record.name);
        let inside = name == self.zone || name.ends_with(&format!(".{}", self.zone));
        if inside && !name.split('.').any(str::is_empty) {
            Ok(name)
        } else {
            Err(ProviderError::invalid_name(format!("{} is not inside the zone {}", record.name, self.zone)))
        }
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[dns_verify::async_trait]
impl DnsProvider for ZoneProvider {
    async fn create(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        let owner = self.owner(record)?;
        let mut state = self.state.lock().await;
        if state.records.get(&owner).is_some_and(|set| set.contains(&record.data)) {
            return Ok(()); // already there: nothing to ask the host
        }
        self.host.create(record).await?;
        state.records.entry(owner).or_default().insert(record.data.clone());
        state.journal.push(Change::Created(record.clone()));
        Ok(())
    }

    async fn delete(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        let owner = self.owner(record)?;
        let mut state = self.state.lock().await;
        if !state.records.get(&owner).is_some_and(|set| set.contains(&record.data)) {
            return Ok(()); // deleting what is not there succeeds
        }
        self.host.delete(record).await?;
        if let Some(set) = state.records.get_mut(&owner) {
            set.remove(&record.data);
            if set.is_empty() {
                state.records.remove(&owner);
            }
        }
        state.journal.push(Change::Deleted(record.clone()));
        Ok(())
    }

    /// What this provider wrote at `name` (a real integration asks the DNS
    /// host's API). `replace`, and the edge's credential check, list.
    async fn list(&self, name: &str) -> Result<Vec<DnsRecord>, ProviderError> {
        let owner = self.owner(&DnsRecord::txt(name, ""))?;
        let state = self.state.lock().await;
        let data = state.records.get(&owner).into_iter().flatten();
        Ok(data.map(|data| DnsRecord { name: owner.clone(), ttl: 60, data: data.clone() }).collect())
    }
}

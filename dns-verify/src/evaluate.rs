//! Judging answers against expectations: pure functions, no I/O.

use std::net::{IpAddr, SocketAddr};

use time::OffsetDateTime;

use crate::{Expectation, ProxyRanges, RecordReport, RecordStatus, ServerAnswer, report::fix_for};

/// How an answer (after following CNAMEs) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerEnd {
    /// Records of the queried type were found at the end of the chain.
    Records,
    /// The last name does not exist.
    NxDomain,
    /// The last name exists but has no records of the queried type.
    NoData,
    /// The CNAME chain loops.
    CnameLoop,
    /// The CNAME chain is longer than the limit.
    ChainTooLong,
    /// The chain left the answering server and could not be followed
    /// further: the next name's servers failed (timeout, SERVFAIL, REFUSED)
    /// or none were found. `chain` holds the hops seen before; the reason
    /// is kept.
    Unresolved(String),
    /// The name holds no records of the queried type and no CNAME, but
    /// A/AAAA records (in `values`): what a CDN's proxied, flattened CNAME
    /// looks like at `_acme-challenge` (Cloudflare's orange cloud).
    Addresses,
}

/// What one server said for one query, CNAMEs followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// An answer.
    Answer {
        /// CNAME targets in order (empty when the name holds records itself).
        chain: Vec<String>,
        /// Record values of the queried type at the end of the chain
        /// (TXT strings, addresses).
        values: Vec<String>,
        /// How the chain ended.
        end: AnswerEnd,
    },
    /// No usable answer: timeout, SERVFAIL, REFUSED, network error.
    Failed(String),
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'))
}

fn end_detail(end: &AnswerEnd, chain: &[String]) -> Option<String> {
    match end {
        AnswerEnd::Records => None,
        AnswerEnd::NxDomain => Some("NXDOMAIN".into()),
        AnswerEnd::NoData => Some("NODATA".into()),
        AnswerEnd::CnameLoop => Some(format!("CNAME loop: {}", chain.join(" → "))),
        AnswerEnd::ChainTooLong => Some(format!("CNAME chain too long: {}", chain.join(" → "))),
        AnswerEnd::Unresolved(reason) => {
            Some(format!("CNAME chain {} could not be followed further: {reason}", chain.join(" → ")))
        }
        // From the TXT point of view the name has no data.
        AnswerEnd::Addresses => Some("NODATA".into()),
    }
}

/// Judges one server's observation: (status, observed values, detail).
#[must_use]
pub fn judge(
    expectation: &Expectation,
    observation: &Observation,
    proxies: &ProxyRanges,
) -> (RecordStatus, Vec<String>, Option<String>) {
    let (chain, values, end) = match observation {
        Observation::Failed(reason) => return (RecordStatus::LookupFailed, Vec::new(), Some(reason.clone())),
        Observation::Answer { chain, values, end } => (chain, values, end),
    };
    let detail = end_detail(end, chain);
    let broken_chain = matches!(end, AnswerEnd::CnameLoop | AnswerEnd::ChainTooLong);
    if let AnswerEnd::Unresolved(reason) = end {
        return match expectation {
            // The delegation must point straight at its target: a first hop
            // elsewhere is wrong whatever lies behind it (another provider's
            // zone that refuses us, a broken zone, a dead server).
            Expectation::AcmeDelegation { target, .. } if chain.iter().any(|c| same_name(c, target)) => {
                (RecordStatus::Valid, chain.clone(), detail)
            }
            Expectation::AcmeDelegation { .. } if !chain.is_empty() => {
                (RecordStatus::Wrong, chain.clone(), detail)
            }
            _ => (RecordStatus::LookupFailed, Vec::new(), Some(reason.clone())),
        };
    }
    match expectation {
        Expectation::AcmeDelegation { target, .. } => {
            if chain.iter().any(|c| same_name(c, target)) {
                (RecordStatus::Valid, chain.clone(), detail)
            } else if !chain.is_empty() {
                (RecordStatus::Wrong, chain.clone(), detail)
            } else if *end == AnswerEnd::Addresses {
                delegation_addresses(values, proxies, detail)
            } else if !values.is_empty() {
                (RecordStatus::Duplicate, values.clone(), Some("TXT records where the CNAME must be".into()))
            } else {
                (RecordStatus::Missing, Vec::new(), detail)
            }
        }
        Expectation::OwnershipTxt { token, .. } => {
            if broken_chain {
                (RecordStatus::Wrong, chain.clone(), detail)
            } else if values.iter().any(|v| v == token) {
                (RecordStatus::Valid, values.clone(), detail)
            } else if !values.is_empty() {
                (RecordStatus::Wrong, values.clone(), detail)
            } else {
                (RecordStatus::Missing, Vec::new(), detail)
            }
        }
        Expectation::Routing { cname, addresses, .. } => {
            if let Some(target) = cname
                && chain.iter().any(|c| same_name(c, target))
            {
                return (RecordStatus::Valid, chain.clone(), detail);
            }
            let ips: Vec<IpAddr> = values.iter().filter_map(|v| v.parse().ok()).collect();
            let mut observed = chain.clone();
            observed.extend(values.iter().cloned());
            if broken_chain {
                (RecordStatus::Wrong, observed, detail)
            } else if !ips.is_empty() && !addresses.is_empty() && ips.iter().all(|ip| addresses.contains(ip))
            {
                // A/AAAA straight at the edge: a flattened apex or an A record.
                (RecordStatus::Valid, observed, detail)
            } else if let Some(provider) = ips.iter().find_map(|ip| proxies.provider_of(*ip)) {
                (RecordStatus::Proxied, observed, Some(format!("{provider} proxy addresses")))
            } else if observed.is_empty() {
                (RecordStatus::Missing, observed, detail)
            } else {
                (RecordStatus::Wrong, observed, detail)
            }
        }
    }
}

/// `_acme-challenge` answering addresses instead of a CNAME: inside a CDN's
/// proxy ranges it is a proxied CNAME (set it to DNS only); other addresses
/// leave the CNAME missing, as before.
fn delegation_addresses(
    values: &[String],
    proxies: &ProxyRanges,
    detail: Option<String>,
) -> (RecordStatus, Vec<String>, Option<String>) {
    let provider =
        values.iter().filter_map(|v| v.parse::<IpAddr>().ok()).find_map(|ip| proxies.provider_of(ip));
    match provider {
        Some(provider) => (
            RecordStatus::Proxied,
            values.to_vec(),
            Some(format!("{provider} proxy addresses where the CNAME must be (a proxied, flattened CNAME)")),
        ),
        None => (RecordStatus::Missing, Vec::new(), detail),
    }
}

/// Combines every server's judgement into one report. `Valid` only when all
/// agree; servers that are not valid while another is are listed as lagging;
/// a failed server never turns into `Missing`.
#[must_use]
pub fn aggregate(
    expectation: &Expectation,
    servers: Vec<ServerAnswer>,
    checked_at: OffsetDateTime,
) -> RecordReport {
    let answered: Vec<&ServerAnswer> =
        servers.iter().filter(|s| s.status != RecordStatus::LookupFailed).collect();
    let any_valid = answered.iter().any(|s| s.status == RecordStatus::Valid);
    // The most telling disagreement among servers that answered.
    let rank = |s: RecordStatus| match s {
        RecordStatus::Duplicate => 0,
        RecordStatus::Wrong => 1,
        RecordStatus::Proxied => 2,
        RecordStatus::Missing => 3,
        RecordStatus::LookupFailed => 4,
        RecordStatus::Valid => 5,
    };
    let worst = answered.iter().filter(|s| s.status != RecordStatus::Valid).min_by_key(|s| rank(s.status));
    let failed = servers.iter().find(|s| s.status == RecordStatus::LookupFailed);
    let (status, source) = match (worst, failed) {
        (Some(w), _) => (w.status, Some(*w)),
        (None, Some(f)) => (RecordStatus::LookupFailed, Some(f)),
        (None, None) if servers.is_empty() => (RecordStatus::LookupFailed, None),
        (None, None) => (RecordStatus::Valid, servers.first()),
    };
    let lagging: Vec<SocketAddr> = if any_valid {
        servers.iter().filter(|s| s.status != RecordStatus::Valid).map(|s| s.server).collect()
    } else {
        Vec::new()
    };
    let observed = source.map(|s| s.observed.clone()).unwrap_or_default();
    let detail = source
        .and_then(|s| s.detail.clone())
        .or_else(|| servers.is_empty().then(|| "no authoritative server".into()));
    let fix = fix_for(status, expectation, &observed, &lagging, detail.as_deref());
    RecordReport {
        name: expectation.record_name(),
        record_type: expectation.record_type().to_owned(),
        expected: expectation.expected_value(),
        expectation: expectation.clone(),
        status,
        observed,
        servers,
        lagging,
        checked_at,
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hostname;

    fn host() -> Hostname {
        Hostname::parse("shop.example.com").unwrap()
    }

    fn answer(chain: &[&str], values: &[&str], end: AnswerEnd) -> Observation {
        Observation::Answer {
            chain: chain.iter().map(|s| (*s).to_owned()).collect(),
            values: values.iter().map(|s| (*s).to_owned()).collect(),
            end,
        }
    }

    #[test]
    fn delegation_statuses() {
        let e = Expectation::AcmeDelegation { host: host(), target: "t.acme.edge.test".into() };
        let p = ProxyRanges::default();
        assert_eq!(
            judge(&e, &answer(&["t.acme.edge.test."], &[], AnswerEnd::NoData), &p).0,
            RecordStatus::Valid
        );
        assert_eq!(
            judge(&e, &answer(&["x.other.test"], &[], AnswerEnd::NxDomain), &p).0,
            RecordStatus::Wrong
        );
        assert_eq!(judge(&e, &answer(&[], &["old"], AnswerEnd::Records), &p).0, RecordStatus::Duplicate);
        assert_eq!(judge(&e, &answer(&[], &[], AnswerEnd::NxDomain), &p).0, RecordStatus::Missing);
        assert_eq!(judge(&e, &Observation::Failed("timeout".into()), &p).0, RecordStatus::LookupFailed);
    }

    #[test]
    fn delegation_with_an_unresolvable_chain_is_judged_by_its_first_hop() {
        let e = Expectation::AcmeDelegation { host: host(), target: "t.acme.edge.test".into() };
        let p = ProxyRanges::default();
        let unresolved =
            |chain: &[&str]| answer(chain, &[], AnswerEnd::Unresolved("timeout after 2s".into()));
        let (status, observed, detail) = judge(&e, &unresolved(&["x.other-dns.test"]), &p);
        assert_eq!((status, observed), (RecordStatus::Wrong, vec!["x.other-dns.test".to_owned()]));
        assert!(detail.unwrap().contains("timeout after 2s"));
        assert_eq!(judge(&e, &unresolved(&["t.acme.edge.test"]), &p).0, RecordStatus::Valid);
        // Other records need what lies behind the chain: still temporary.
        let txt = Expectation::OwnershipTxt { host: host(), token: "tok".into() };
        assert_eq!(judge(&txt, &unresolved(&["x.other-dns.test"]), &p).0, RecordStatus::LookupFailed);
    }

    #[test]
    fn delegation_answering_proxy_addresses_is_proxied() {
        let e = Expectation::AcmeDelegation { host: host(), target: "t.acme.edge.test".into() };
        let p = ProxyRanges::cloudflare();
        let (status, observed, _) = judge(&e, &answer(&[], &["104.16.0.1"], AnswerEnd::Addresses), &p);
        assert_eq!((status, observed), (RecordStatus::Proxied, vec!["104.16.0.1".to_owned()]));
        let (status, observed, detail) = judge(&e, &answer(&[], &["192.0.2.1"], AnswerEnd::Addresses), &p);
        assert_eq!((status, observed, detail.as_deref()), (RecordStatus::Missing, vec![], Some("NODATA")));
    }

    #[test]
    fn routing_statuses() {
        let e = Expectation::Routing {
            host: host(),
            cname: Some("edge.test".into()),
            addresses: vec!["192.0.2.10".parse().unwrap()],
        };
        let p = ProxyRanges::cloudflare();
        assert_eq!(
            judge(&e, &answer(&["edge.test"], &["192.0.2.10"], AnswerEnd::Records), &p).0,
            RecordStatus::Valid
        );
        assert_eq!(judge(&e, &answer(&[], &["192.0.2.10"], AnswerEnd::Records), &p).0, RecordStatus::Valid);
        assert_eq!(judge(&e, &answer(&[], &["104.16.0.1"], AnswerEnd::Records), &p).0, RecordStatus::Proxied);
        assert_eq!(judge(&e, &answer(&[], &["198.51.100.1"], AnswerEnd::Records), &p).0, RecordStatus::Wrong);
        assert_eq!(judge(&e, &answer(&[], &[], AnswerEnd::NoData), &p).0, RecordStatus::Missing);
    }

    #[test]
    fn aggregation_needs_agreement_and_never_turns_failures_into_missing() {
        let e = Expectation::OwnershipTxt { host: host(), token: "tok".into() };
        let s = |port: u16, status| ServerAnswer {
            server: SocketAddr::from(([127, 0, 0, 1], port)),
            status,
            observed: vec![],
            detail: None,
        };
        let now = OffsetDateTime::now_utc();
        let r = aggregate(&e, vec![s(1, RecordStatus::Valid), s(2, RecordStatus::Valid)], now);
        assert_eq!(r.status, RecordStatus::Valid);
        let r = aggregate(&e, vec![s(1, RecordStatus::Valid), s(2, RecordStatus::Missing)], now);
        assert_eq!(r.status, RecordStatus::Missing);
        assert_eq!(r.lagging, [SocketAddr::from(([127, 0, 0, 1], 2))]);
        assert!(r.fix.contains("propagation"));
        let r = aggregate(&e, vec![s(1, RecordStatus::Valid), s(2, RecordStatus::LookupFailed)], now);
        assert_eq!(r.status, RecordStatus::LookupFailed);
        let r = aggregate(&e, vec![s(1, RecordStatus::LookupFailed), s(2, RecordStatus::LookupFailed)], now);
        assert_eq!(r.status, RecordStatus::LookupFailed);
        assert_eq!(aggregate(&e, vec![], now).status, RecordStatus::LookupFailed);
    }
}

//! Local HTTP servers answering as Cloudflare's, GoDaddy's and Namecheap's
//! DNS APIs document (no emulator exists for them): success bodies, and
//! each provider's gate with its documented status and body. Records live in
//! memory; every request is counted, so a test can bound retries.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;

/// What a double answers: status, content type, body.
type Answer = (u16, &'static str, String);

/// One record as the doubles keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubRecord {
    /// Record type (`TXT`, `CNAME`, …).
    pub kind: String,
    /// Fully qualified name, lowercase, no trailing dot.
    pub name: String,
    /// The value as the API carries it.
    pub data: String,
    /// TTL.
    pub ttl: u32,
}

/// Which gate a double answers every request with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// None: the API works.
    Open,
    /// GoDaddy: `403 ACCESS_DENIED` (account tier). Namecheap: error 1011150
    /// (client IP not allow-listed). Cloudflare: `403 10000` on writes (a
    /// token without `Zone.DNS:Edit`).
    Closed,
}

struct State {
    zone: String,
    records: Mutex<Vec<StubRecord>>,
    gate: Mutex<Gate>,
    requests: AtomicUsize,
}

/// A running double. The server lives as long as the runtime.
#[derive(Clone)]
pub struct ApiDouble {
    addr: SocketAddr,
    state: Arc<State>,
}

impl std::fmt::Debug for ApiDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiDouble").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// The provider a double imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cloudflare,
    GoDaddy,
    Namecheap,
}

impl ApiDouble {
    /// Cloudflare's API v4 for `zone` (zone id `zone-id-1`), accepting the
    /// bearer token `token`.
    pub async fn cloudflare(zone: &str, token: &str) -> Self {
        Self::start(Kind::Cloudflare, zone, token.to_owned()).await
    }

    /// GoDaddy's Domains API for `domain`, accepting `sso-key key:secret`.
    pub async fn godaddy(domain: &str, key: &str, secret: &str) -> Self {
        Self::start(Kind::GoDaddy, domain, format!("sso-key {key}:{secret}")).await
    }

    /// Namecheap's XML API for `domain`, accepting `api_key` from the
    /// allow-listed client IP `allowed_ip`.
    pub async fn namecheap(domain: &str, api_key: &str, allowed_ip: &str) -> Self {
        Self::start(Kind::Namecheap, domain, format!("{api_key}|{allowed_ip}")).await
    }

    async fn start(kind: Kind, zone: &str, secret: String) -> Self {
        let state = Arc::new(State {
            zone: zone.trim_end_matches('.').to_ascii_lowercase(),
            records: Mutex::new(Vec::new()),
            gate: Mutex::new(Gate::Open),
            requests: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let served = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (state, secret) = (Arc::clone(&served), secret.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (state, secret) = (Arc::clone(&state), secret.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            state.requests.fetch_add(1, Ordering::SeqCst);
                            let (status, ctype, text) = match kind {
                                Kind::Cloudflare => cloudflare(&state, &secret, &parts, &body),
                                Kind::GoDaddy => godaddy(&state, &secret, &parts, &body),
                                Kind::Namecheap => namecheap(&state, &secret, &body),
                            };
                            let response = Response::builder()
                                .status(status)
                                .header("content-type", ctype)
                                .body(Full::new(Bytes::from(text)))
                                .unwrap_or_default();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Self { addr, state }
    }

    /// The API's base URL (`http://127.0.0.1:PORT`; Cloudflare's is
    /// `…/client/v4`, Namecheap's `…/xml.response`).
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes or opens the gate.
    pub fn set_gate(&self, gate: Gate) {
        *self.state.gate.lock().unwrap_or_else(PoisonError::into_inner) = gate;
    }

    /// How many requests it has answered.
    #[must_use]
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// The records it holds.
    #[must_use]
    pub fn records(&self) -> Vec<StubRecord> {
        self.state.records.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Adds a record directly (a customer's existing data).
    pub fn insert(&self, record: StubRecord) {
        self.state.records.lock().unwrap_or_else(PoisonError::into_inner).push(record);
    }
}

fn gate(state: &State) -> Gate {
    *state.gate.lock().unwrap_or_else(PoisonError::into_inner)
}

fn header(parts: &hyper::http::request::Parts, name: &str) -> String {
    parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn query(parts: &hyper::http::request::Parts) -> HashMap<String, String> {
    parts
        .uri
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.replace("%2E", ".").replace("%5F", "_")))
                .collect()
        })
        .unwrap_or_default()
}

fn fqdn(rel: &str, zone: &str) -> String {
    if rel == "@" { zone.to_owned() } else { format!("{}.{zone}", rel.to_ascii_lowercase()) }
}

/// `name` relative to `zone` as GoDaddy and Namecheap write it (`@` for the
/// apex): [`fqdn`]'s inverse.
fn relative(name: &str, zone: &str) -> String {
    if name == zone { "@".into() } else { name.trim_end_matches(&format!(".{zone}")).to_owned() }
}

fn json(status: u16, value: &serde_json::Value) -> Answer {
    (status, "application/json", value.to_string())
}

/// Cloudflare API v4, as documented: envelopes `{success, errors, messages, result}`.
fn cloudflare(state: &State, token: &str, parts: &hyper::http::request::Parts, body: &Bytes) -> Answer {
    let fail = |status: u16, code: u32, message: &str| {
        json(
            status,
            &serde_json::json!({"success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null}),
        )
    };
    let ok = |result: serde_json::Value| {
        json(200, &serde_json::json!({"success": true, "errors": [], "messages": [], "result": result}))
    };
    if header(parts, "authorization") != format!("Bearer {token}") {
        return fail(403, 9109, "Invalid access token");
    }
    let path = parts.uri.path().trim_start_matches("/client/v4");
    let method = parts.method.as_str();
    let writes = method != "GET";
    if writes && gate(state) == Gate::Closed {
        return fail(403, 10000, "Authentication error");
    }
    let record_json = |id: usize, r: &StubRecord| serde_json::json!({"id": format!("rec-{id}"), "zone_id": "zone-id-1", "zone_name": state.zone, "type": r.kind, "name": r.name, "content": r.data, "ttl": r.ttl, "proxied": false});
    let mut records = state.records.lock().unwrap_or_else(PoisonError::into_inner);
    match (method, path) {
        ("GET", "/zones") => {
            let name = query(parts).get("name").cloned().unwrap_or_default();
            if name == state.zone {
                ok(serde_json::json!([{"id": "zone-id-1", "name": state.zone, "status": "active"}]))
            } else {
                ok(serde_json::json!([]))
            }
        }
        ("GET", "/zones/zone-id-1/dns_records") => {
            let name = query(parts).get("name").cloned();
            let list: Vec<_> = records
                .iter()
                .enumerate()
                .filter(|(_, r)| name.as_ref().is_none_or(|n| *n == r.name))
                .map(|(i, r)| record_json(i, r))
                .collect();
            ok(serde_json::Value::Array(list))
        }
        ("POST", "/zones/zone-id-1/dns_records") => {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
                return fail(400, 9207, "Request body is invalid.");
            };
            let r = StubRecord {
                kind: v["type"].as_str().unwrap_or_default().to_owned(),
                name: v["name"].as_str().unwrap_or_default().to_ascii_lowercase(),
                data: v["content"].as_str().unwrap_or_default().to_owned(),
                ttl: v["ttl"].as_u64().and_then(|t| u32::try_from(t).ok()).unwrap_or(1),
            };
            let at_name: Vec<&StubRecord> = records.iter().filter(|x| x.name == r.name).collect();
            if (r.kind == "CNAME" && !at_name.is_empty()) || at_name.iter().any(|x| x.kind == "CNAME") {
                return fail(400, 81053, "An A, AAAA, or CNAME record with that host already exists.");
            }
            records.push(r.clone());
            ok(record_json(records.len() - 1, &r))
        }
        ("DELETE", p) if p.starts_with("/zones/zone-id-1/dns_records/rec-") => {
            let id: usize = p.rsplit("rec-").next().and_then(|n| n.parse().ok()).unwrap_or(usize::MAX);
            if id < records.len() {
                // Ids are positions; a deleted record leaves a tombstone.
                records[id] =
                    StubRecord { kind: "DELETED".into(), name: String::new(), data: String::new(), ttl: 0 };
                ok(serde_json::json!({"id": format!("rec-{id}")}))
            } else {
                fail(404, 81044, "Record does not exist.")
            }
        }
        (_, p) if p.starts_with("/zones/") => {
            fail(404, 7003, "Could not route to /zones/…, perhaps your object identifier is invalid?")
        }
        _ => fail(404, 7000, "No route for that URI"),
    }
}

/// GoDaddy's Domains API, as documented: errors are `{code, message}`.
fn godaddy(state: &State, auth: &str, parts: &hyper::http::request::Parts, body: &Bytes) -> Answer {
    let fail = |status: u16, code: &str, message: &str| {
        json(status, &serde_json::json!({"code": code, "message": message}))
    };
    if header(parts, "authorization") != auth {
        return fail(401, "UNABLE_TO_AUTHENTICATE", "Unauthorized : Could not authenticate API key/secret");
    }
    if gate(state) == Gate::Closed {
        return fail(403, "ACCESS_DENIED", "Authenticated user is not allowed access");
    }
    let segments: Vec<&str> = parts.uri.path().trim_matches('/').split('/').collect();
    let domain = segments.get(2).copied().unwrap_or_default();
    if domain != state.zone {
        return fail(
            404,
            "UNKNOWN_DOMAIN",
            "The given domain is not registered, or does not have a zone file",
        );
    }
    let mut records = state.records.lock().unwrap_or_else(PoisonError::into_inner);
    match (parts.method.as_str(), segments.as_slice()) {
        ("GET", ["v1", "domains", _, "records"]) => {
            let list: Vec<_> = records
                .iter()
                .map(|r| serde_json::json!({"type": r.kind, "name": relative(&r.name, &state.zone), "data": r.data, "ttl": r.ttl}))
                .collect();
            json(200, &serde_json::Value::Array(list))
        }
        ("PUT", ["v1", "domains", _, "records", kind, rel]) => {
            let Ok(items) = serde_json::from_slice::<Vec<serde_json::Value>>(body) else {
                return fail(422, "INVALID_BODY", "Request body doesn't fulfill schema");
            };
            let name = fqdn(&percent_decode(rel), &state.zone);
            records.retain(|r| !(r.name == name && r.kind == *kind));
            for item in items {
                records.push(StubRecord {
                    kind: (*kind).to_owned(),
                    name: name.clone(),
                    data: item["data"].as_str().unwrap_or_default().to_owned(),
                    ttl: item["ttl"].as_u64().and_then(|t| u32::try_from(t).ok()).unwrap_or(3600),
                });
            }
            (200, "application/json", String::new())
        }
        ("DELETE", ["v1", "domains", _, "records", kind, rel]) => {
            let name = fqdn(&percent_decode(rel), &state.zone);
            let before = records.len();
            records.retain(|r| !(r.name == name && r.kind == *kind));
            if records.len() == before {
                fail(404, "NOT_FOUND", "The requested record was not found")
            } else {
                (204, "application/json", String::new())
            }
        }
        _ => fail(404, "NOT_FOUND", "Not found"),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len() + 1
            && let Some(h) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(h);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn namecheap_envelope(status: &str, command: &str, inner: &str) -> Answer {
    (
        200,
        "text/xml",
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<ApiResponse Status=\"{status}\" xmlns=\"http://api.namecheap.com/xml.response\">\
             {inner}<RequestedCommand>{}</RequestedCommand><Server>TEST</Server><GMTTimeDifference>--5:00</GMTTimeDifference>\
             <ExecutionTime>0.01</ExecutionTime></ApiResponse>",
            command.to_ascii_lowercase()
        ),
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Namecheap's XML API, as documented: `Status="ERROR"` with numbered errors.
fn namecheap(state: &State, secret: &str, body: &Bytes) -> Answer {
    let params: HashMap<String, String> = form_pairs(body);
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    let (key, allowed_ip) = secret.split_once('|').unwrap_or((secret, ""));
    let command = get("Command");
    let error = |number: &str, message: &str| {
        namecheap_envelope(
            "ERROR",
            &command,
            &format!(
                "<Errors><Error Number=\"{number}\">{}</Error></Errors><Warnings />",
                xml_escape(message)
            ),
        )
    };
    if get("ClientIp").is_empty() {
        return error("1010104", "Parameter ClientIp is missing");
    }
    if gate(state) == Gate::Closed || get("ClientIp") != allowed_ip {
        return error("1011150", &format!("Invalid request IP: {}", get("ClientIp")));
    }
    if get("ApiKey") != key {
        return error("1011102", "API Key is invalid or API access has not been enabled");
    }
    if format!("{}.{}", get("SLD"), get("TLD")) != state.zone {
        return error("2019166", "Domain not found");
    }
    let mut records = state.records.lock().unwrap_or_else(PoisonError::into_inner);
    match command.as_str() {
        "namecheap.domains.dns.getHosts" => {
            let hosts: String = records
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    format!(
                        "<host HostId=\"{}\" Name=\"{}\" Type=\"{}\" Address=\"{}\" MXPref=\"10\" TTL=\"{}\" AssociatedAppTitle=\"\" FriendlyName=\"\" IsActive=\"true\" IsDDNSEnabled=\"false\" />",
                        i + 1, xml_escape(&relative(&r.name, &state.zone)), r.kind, xml_escape(&r.data), r.ttl
                    )
                })
                .collect();
            namecheap_envelope(
                "OK",
                &command,
                &format!(
                    "<Errors /><Warnings /><CommandResponse Type=\"namecheap.domains.dns.getHosts\"><DomainDNSGetHostsResult Domain=\"{}\" EmailType=\"FWD\" IsUsingOurDNS=\"true\">{hosts}</DomainDNSGetHostsResult></CommandResponse>",
                    state.zone
                ),
            )
        }
        "namecheap.domains.dns.setHosts" => {
            let mut fresh = Vec::new();
            for n in 1.. {
                let Some(name) = params.get(&format!("HostName{n}")) else { break };
                fresh.push(StubRecord {
                    kind: get(&format!("RecordType{n}")),
                    name: fqdn(name, &state.zone),
                    data: get(&format!("Address{n}")),
                    ttl: get(&format!("TTL{n}")).parse().unwrap_or(1800),
                });
            }
            *records = fresh;
            namecheap_envelope(
                "OK",
                &command,
                &format!(
                    "<Errors /><Warnings /><CommandResponse Type=\"namecheap.domains.dns.setHosts\"><DomainDNSSetHostsResult Domain=\"{}\" IsSuccess=\"true\"><Warnings /></DomainDNSSetHostsResult></CommandResponse>",
                    state.zone
                ),
            )
        }
        _ => error("1010101", "Unknown command"),
    }
}

fn form_pairs(body: &Bytes) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " "))))
        .collect()
}

//! AWS Signature Version 4 over ring's HMAC-SHA256 and SHA-256, as AWS
//! documents it ("Create a signed AWS API request"). Written here because the
//! AWS SDK's `aws-sigv4` crate signs with RustCrypto's `hmac`/`sha2` — a
//! second crypto implementation beside ring, which this workspace keeps as
//! its only one.

use ring::{digest, hmac};

/// What a request is signed for.
#[derive(Clone)]
pub(crate) struct Signer {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    pub service: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("region", &self.region)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// RFC 3986 unreserved characters stay; everything else is `%XX`.
const AWS_URI: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `value` encoded as SigV4 wants it in a query string.
pub(crate) fn uri_encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, AWS_URI).to_string()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

fn hmac(key: &[u8], data: &str) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
}

impl Signer {
    /// The `Authorization` header for a request. `amz_date` is
    /// `YYYYMMDDTHHMMSSZ`; `headers` are every header to sign (lowercase
    /// names; `host` and `x-amz-date` among them); `query` is the pairs of
    /// the query string, not encoded.
    pub fn authorization(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: &[u8],
        amz_date: &str,
    ) -> String {
        let date = &amz_date[..amz_date.len().min(8)];
        let mut query: Vec<(String, String)> =
            query.iter().map(|(k, v)| (uri_encode(k), uri_encode(v))).collect();
        query.sort();
        let canonical_query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        let mut headers: Vec<(String, String)> =
            headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned())).collect();
        headers.sort();
        let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let signed_headers = headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
        let canonical_request = format!(
            "{method}\n{path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{}",
            sha256_hex(body)
        );
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let string_to_sign =
            format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()));
        let k_date = hmac(format!("AWS4{}", self.secret_access_key).as_bytes(), date);
        let k_region = hmac(k_date.as_ref(), &self.region);
        let k_service = hmac(k_region.as_ref(), &self.service);
        let k_signing = hmac(k_service.as_ref(), "aws4_request");
        let signature = hex::encode(hmac(k_signing.as_ref(), &string_to_sign));
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.access_key_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's SigV4 test suite, `get-vanilla`.
    #[test]
    fn aws_test_suite_get_vanilla() {
        let signer = Signer {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            region: "us-east-1".into(),
            service: "service".into(),
        };
        let auth = signer.authorization(
            "GET",
            "/",
            &[],
            &[("host", "example.amazonaws.com"), ("x-amz-date", "20150830T123600Z")],
            b"",
            "20150830T123600Z",
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn query_values_are_encoded_and_sorted() {
        assert_eq!(uri_encode("a b/c~"), "a%20b%2Fc~");
    }
}

//! The outgoing HTTP client of the agents that post to Elasticsearch (feature `http-client`:
//! logship's `_bulk` sink, log2json's HTTP output): reqwest over rustls with the built-in
//! (webpki) roots, plus the options users need for private clusters: extra CA certificates
//! from a PEM file (a Secret or ConfigMap volume) and, for test clusters, no verification.
use std::path::PathBuf;

/// TLS options of an outgoing client.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// PEM file of CA certificates trusted in addition to the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Do not verify the server's certificate (test clusters only).
    pub insecure: bool,
}

/// A client builder with the agent's user agent and `tls` applied; the caller adds timeouts,
/// headers and pool settings. `option` names the CA option in errors (`--es-ca-file`), which
/// say what is wrong with the file and what is expected.
pub fn builder(
    user_agent: &str,
    tls: &ClientTls,
    option: &str,
) -> Result<reqwest::ClientBuilder, String> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(user_agent)
        .danger_accept_invalid_certs(tls.insecure);
    if let Some(ca) = &tls.ca_file {
        let pem = std::fs::read(ca).map_err(|e| {
            format!(
                "cannot read {option} {}: {e}; mount the CA bundle there (a Secret or ConfigMap volume)",
                ca.display()
            )
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            format!(
                "invalid value \"{}\" for {option}: expected PEM certificates ({e})",
                ca.display()
            )
        })?;
        if certs.is_empty() {
            return Err(format!(
                "invalid value \"{}\" for {option}: no PEM certificate in it",
                ca.display()
            ));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_problems_name_the_option_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = ClientTls {
            ca_file: Some(dir.path().join("nope.pem")),
            insecure: false,
        };
        let e = builder("t", &missing, "--es-ca-file").unwrap_err();
        assert!(e.contains("--es-ca-file") && e.contains("nope.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = builder(
            "t",
            &ClientTls {
                ca_file: Some(empty),
                insecure: false,
            },
            "--http-ca-file",
        )
        .unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        assert!(builder("t", &ClientTls::default(), "x")
            .unwrap()
            .build()
            .is_ok());
    }
}

//! TLS for tokio-postgres connections (feature `postgres-tls`, used by pgbackup's control
//! connection and waitfor's postgres check), with libpq's `sslmode` semantics over rustls, so a
//! server that only accepts TLS works and a verified server is verified the way libpq (psql,
//! pg_dump) verifies it:
//!
//! | sslmode | TLS | server certificate |
//! | --- | --- | --- |
//! | disable | never | - |
//! | allow, prefer (default) | if the server offers it | not checked |
//! | require | always | not checked; checked like verify-ca when `sslrootcert` is given |
//! | verify-ca | always | chain to `sslrootcert` |
//! | verify-full | always | chain to `sslrootcert` and host name |
//!
//! `sslrootcert` (PGSSLROOTCERT) defaults to `~/.postgresql/root.crt`; `system` trusts the
//! webpki (Mozilla) roots. `sslcert` + `sslkey` (PGSSLCERT, PGSSLKEY) add a client certificate.
use std::{
    future::Future,
    io,
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use crate::tls as ctls;
use rustls::{
    client::{
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        WebPkiServerVerifier,
    },
    pki_types::{CertificateDer, ServerName, UnixTime},
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::{
    config::SslMode,
    tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream},
};

/// The TLS files of a connection (libpq's sslrootcert, sslcert, sslkey).
#[derive(Debug, Clone, Default)]
pub struct SslFiles {
    /// CA bundle, or `system`.
    pub rootcert: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// How the control connection uses TLS for an sslmode.
pub fn plan(sslmode: Option<&str>, files: &SslFiles) -> Result<(SslMode, Verify), String> {
    Ok(match sslmode.unwrap_or("prefer") {
        "disable" => (SslMode::Disable, Verify::None),
        "allow" | "prefer" => (SslMode::Prefer, Verify::None),
        "require" if files.rootcert.is_some() => (SslMode::Require, Verify::Chain),
        "require" => (SslMode::Require, Verify::None),
        "verify-ca" => (SslMode::Require, Verify::Chain),
        "verify-full" => (SslMode::Require, Verify::Full),
        other => return Err(format!("unknown sslmode {other:?}")),
    })
}

/// What is checked of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    None,
    /// The chain up to a trusted root, not the name.
    Chain,
    /// The chain and the host name.
    Full,
}

/// The rustls client configuration for `verify` with `files`. Errors name the file and what
/// to do.
pub fn client_config(verify: Verify, files: &SslFiles) -> Result<Arc<ClientConfig>, String> {
    let client_cert = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        _ => {
            return Err(
                "a client certificate needs both sslcert (PGSSLCERT) and sslkey (PGSSLKEY)".into(),
            )
        }
    };
    // The CA file; None: the webpki roots (`system`).
    let ca_file = || -> Result<Option<PathBuf>, String> {
        match files.rootcert.as_deref() {
            Some("system") => Ok(None),
            Some(path) => Ok(Some(PathBuf::from(path))),
            None => {
                let default = std::env::var_os("HOME")
                    .map(|h| Path::new(&h).join(".postgresql/root.crt"))
                    .unwrap_or_else(|| PathBuf::from("~/.postgresql/root.crt"));
                if !default.exists() {
                    return Err(format!(
                        "root certificate file {} does not exist: give the CA with sslrootcert / PGSSLROOTCERT (or `system` for the public roots), or use sslmode require to skip verification",
                        default.display()
                    ));
                }
                Ok(Some(default))
            }
        }
    };
    let common_config =
        |opts: ctls::ClientOptions| ctls::client_config(&opts).map_err(|e| e.to_string());
    match verify {
        // sslmode prefer/require: encrypted, the server not authenticated (as libpq).
        Verify::None => common_config(ctls::ClientOptions {
            insecure_skip_verify: true,
            client_cert,
            ..Default::default()
        }),
        Verify::Full => common_config(ctls::ClientOptions {
            ca_file: ca_file()?,
            client_cert,
            ..Default::default()
        }),
        Verify::Chain => {
            let roots = match ca_file()? {
                Some(path) => ctls::load_roots(&path).map_err(|e| e.to_string())?,
                None => RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                },
            };
            let provider = ctls::provider();
            let inner =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("cannot use the root certificates: {e}"))?;
            let builder = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)));
            let config = match client_cert {
                Some((cert, key)) => {
                    let chain = ctls::load_certs(&cert).map_err(|e| e.to_string())?;
                    let key_der = ctls::load_private_key(&key).map_err(|e| e.to_string())?;
                    builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                        format!(
                            "client certificate {} with key {}: {e}",
                            cert.display(),
                            key.display()
                        )
                    })?
                }
                None => builder.with_no_client_auth(),
            };
            Ok(Arc::new(config))
        }
    }
}

/// verify-ca: the chain must lead to a trusted root; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name: a name error means the chain is good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// tokio-postgres's TLS hook backed by rustls.
#[derive(Clone)]
pub struct MakeRustls(pub Arc<ClientConfig>);

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        let name = ctls::server_name(domain).map_err(io::Error::other)?;
        Ok(RustlsConnect {
            config: self.0.clone(),
            name,
        })
    }
}

/// One TLS handshake.
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl RustlsConnect {
    /// A handshake with `host` (a name or an IP address) under `config`, for
    /// `tokio_postgres::Config::connect_raw` over a stream of one's own.
    pub fn new(config: Arc<ClientConfig>, host: &str) -> io::Result<Self> {
        let name = ctls::server_name(host).map_err(io::Error::other)?;
        Ok(RustlsConnect { config, name })
    }
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            ctls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await
                .map(RustlsStream)
        })
    }
}

/// A TLS stream to the server.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // No tls-server-end-point binding (its hash depends on the certificate's signature
        // algorithm): SCRAM runs without channel binding, as with libpq's default "prefer"
        // against a server that does not offer SCRAM-SHA-256-PLUS.
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        let none = SslFiles::default();
        let ca = SslFiles {
            rootcert: Some("/ca.pem".into()),
            ..Default::default()
        };
        assert_eq!(plan(None, &none).unwrap(), (SslMode::Prefer, Verify::None));
        assert_eq!(
            plan(Some("disable"), &ca).unwrap(),
            (SslMode::Disable, Verify::None)
        );
        assert_eq!(
            plan(Some("require"), &none).unwrap(),
            (SslMode::Require, Verify::None)
        );
        assert_eq!(
            plan(Some("require"), &ca).unwrap(),
            (SslMode::Require, Verify::Chain)
        );
        assert_eq!(
            plan(Some("verify-full"), &ca).unwrap(),
            (SslMode::Require, Verify::Full)
        );
        assert!(plan(Some("maybe"), &none).is_err());
    }

    #[test]
    fn missing_files_are_named() {
        let files = SslFiles {
            rootcert: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let err = client_config(Verify::Chain, &files).unwrap_err();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        let files = SslFiles {
            cert: Some("/c.pem".into()),
            ..Default::default()
        };
        let err = client_config(Verify::None, &files).unwrap_err();
        assert!(err.contains("sslkey"), "{err}");
    }
}

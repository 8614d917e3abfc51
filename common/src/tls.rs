//! rustls helpers shared by the agents that speak TLS (feature `tls`).
//!
//! - [`load_certs`], [`load_private_key`]: PEM files to DER, with errors that name the file.
//! - [`ClientOptions`] + [`client_config`]: a client configuration with a custom CA (or the
//!   webpki roots), an optional client certificate for mTLS, and an opt-in skip-verify.
//! - [`ReloadingCertResolver`] + [`server_config`]: a server configuration whose certificate and
//!   key are re-read when their files change (Kubernetes Secret rotation); open connections keep
//!   the certificate they started with, new handshakes get the new one. The same resolver serves
//!   a long-lived client's certificate ([`ClientOptions::client_cert_resolver`]),
//!   [`ReloadingRoots`] re-reads a client's CA bundle the same way, and
//!   [`ReloadingServerConfig`] rebuilds a server configuration when its client CA (mutual TLS)
//!   changes.
//!
//! Everything uses the ring provider explicitly, so no process-wide default is needed.
use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use rustls::{
    client::{
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        ResolvesClientCert, WebPkiServerVerifier,
    },
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
    ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
};
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

/// What can go wrong loading TLS material or building a configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} file {path}: {source}")]
    Read {
        /// "certificate", "private key", "CA".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file held no usable PEM block.
    #[error("{path} holds no {what} in PEM form (expected a -----BEGIN {expected}----- block)")]
    Empty {
        /// "certificate", "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The PEM label expected.
        expected: &'static str,
    },
    /// rustls rejected the material.
    #[error("{context}: {source}")]
    Rustls {
        /// What was being built.
        context: String,
        /// The cause.
        source: rustls::Error,
    },
    /// A name that is not a valid DNS name or IP address for SNI and verification.
    #[error("invalid TLS server name {0:?}: expected a DNS name or an IP address")]
    ServerName(String),
}

fn rustls_err(context: impl Into<String>) -> impl FnOnce(rustls::Error) -> TlsError {
    let context = context.into();
    move |source| TlsError::Rustls { context, source }
}

/// The crypto provider every configuration here uses (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file (leaf first for a chain).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    load_certs_as(path, "certificate")
}

fn load_certs_as(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_path_buf(),
            expected: "CERTIFICATE",
        });
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = std::fs::read(path).map_err(|source| TlsError::Read {
        what: "private key",
        path: path.to_path_buf(),
        source,
    })?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(|source| TlsError::Read {
            what: "private key",
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::Empty {
            what: "private key",
            path: path.to_path_buf(),
            expected: "PRIVATE KEY",
        })
}

/// A root store from a CA bundle file.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs_as(path, "CA")? {
        roots
            .add(cert)
            .map_err(rustls_err(format!("CA file {}", path.display())))?;
    }
    Ok(roots)
}

/// Loads a certificate chain and its key, and checks that they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = load_certs(cert)?;
    let key_der = load_private_key(key)?;
    CertifiedKey::from_der(chain, key_der, &provider()).map_err(rustls_err(format!(
        "certificate {} with key {}",
        cert.display(),
        key.display()
    )))
}

/// How a client verifies and authenticates itself.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// CA bundle to trust, read once; `None` trusts the webpki (Mozilla) roots.
    pub ca_file: Option<PathBuf>,
    /// Instead of `ca_file`: a verifier that re-reads the bundle when it changes (a long-lived
    /// client whose CA rotates).
    pub ca_verifier: Option<Arc<ReloadingRoots>>,
    /// Client certificate and key files for mutual TLS, loaded once.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Instead of `client_cert`: a resolver that re-reads the pair when its files change (a
    /// long-lived client whose certificate rotates).
    pub client_cert_resolver: Option<Arc<ReloadingCertResolver>>,
    /// Accept any server certificate (testing only: no protection against interception).
    pub insecure_skip_verify: bool,
    /// ALPN protocols to offer, most preferred first.
    pub alpn: Vec<Vec<u8>>,
}

/// Builds a client configuration.
pub fn client_config(opts: &ClientOptions) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err("TLS client configuration"))?;
    let builder = if opts.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else if let Some(verifier) = &opts.ca_verifier {
        // `dangerous` only because the verifier is a custom type: it is webpki's, re-built
        // from the bundle when the file changes.
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
    } else {
        let roots = match &opts.ca_file {
            Some(path) => load_roots(path)?,
            None => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        builder.with_root_certificates(roots)
    };
    let mut config = match (&opts.client_cert_resolver, &opts.client_cert) {
        (Some(resolver), _) => builder.with_client_cert_resolver(resolver.clone()),
        (None, Some((cert, key))) => {
            let chain = load_certs(cert)?;
            let key_der = load_private_key(key)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(rustls_err(format!(
                    "client certificate {} with key {}",
                    cert.display(),
                    key.display()
                )))?
        }
        (None, None) => builder.with_no_client_auth(),
    };
    config.alpn_protocols = opts.alpn.clone();
    Ok(Arc::new(config))
}

/// The SNI / verification name for `host` (a DNS name or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_string()).map_err(|_| TlsError::ServerName(host.to_string()))
}

/// Builds a server configuration around a certificate resolver; with `client_ca`, clients must
/// present a certificate signed by that CA (mutual TLS).
pub fn server_config(
    resolver: Arc<ReloadingCertResolver>,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    build_server_config(resolver, client_ca).map(Arc::new)
}

fn build_server_config(
    resolver: Arc<ReloadingCertResolver>,
    client_ca: Option<&Path>,
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err("TLS server configuration"))?;
    let builder = match client_ca {
        Some(path) => {
            let roots = Arc::new(load_roots(path)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| TlsError::Rustls {
                    context: format!("client CA {}", path.display()),
                    source: rustls::Error::General(e.to_string()),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Ok(builder.with_cert_resolver(resolver))
}

/// What identifies a file's version: modification time, size and inode (a Secret update swaps a
/// symlink, which changes the inode even when the time does not move).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp(Option<SystemTime>, u64, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp(m.modified().ok(), m.len(), m.ino()))
}

/// Called after each reload attempt with its result.
type ReloadHook = Box<dyn Fn(Result<(), &TlsError>) + Send + Sync>;

/// Loads a reloader's value from its files.
type Load<T> = Box<dyn Fn(&[PathBuf]) -> Result<T, TlsError> + Send + Sync>;

/// What a reloader holds: the value in use, the stamps of the files it was loaded from, and
/// when they were last checked.
struct Loaded<T> {
    value: Arc<T>,
    stamps: Vec<Option<Stamp>>,
    checked: Instant,
}

/// A value loaded from files and loaded again when they change: the files are checked (a
/// `stat` of each) at most once per `check_interval`, when the value is asked for (during a
/// handshake); when any changed, all are loaded again. A load that fails keeps the previous
/// value (and the old stamps, so the next check tries again), so a half-written rotation never
/// breaks anything. See [`ReloadingCertResolver`] and [`ReloadingRoots`].
pub struct Reloading<T> {
    paths: Vec<PathBuf>,
    check_interval: Duration,
    load: Load<T>,
    current: Mutex<Loaded<T>>,
    on_reload: Option<ReloadHook>,
}

impl<T> Reloading<T> {
    fn from_files(
        paths: Vec<PathBuf>,
        check_interval: Duration,
        load: Load<T>,
    ) -> Result<Self, TlsError> {
        let stamps = paths.iter().map(|p| stamp(p)).collect();
        let value = Arc::new(load(&paths)?);
        Ok(Reloading {
            paths,
            check_interval,
            load,
            current: Mutex::new(Loaded {
                value,
                stamps,
                checked: Instant::now(),
            }),
            on_reload: None,
        })
    }

    /// Calls `f` after each reload attempt (to log it and count it).
    pub fn on_reload(mut self, f: impl Fn(Result<(), &TlsError>) + Send + Sync + 'static) -> Self {
        self.on_reload = Some(Box::new(f));
        self
    }

    /// The value in use, after checking the files if the interval has passed.
    pub fn current(&self) -> Arc<T> {
        let mut cur = match self.current.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if cur.checked.elapsed() >= self.check_interval {
            cur.checked = Instant::now();
            let stamps: Vec<_> = self.paths.iter().map(|p| stamp(p)).collect();
            if stamps != cur.stamps {
                let result = (self.load)(&self.paths).map(|v| {
                    cur.value = Arc::new(v);
                    cur.stamps = stamps;
                });
                if let Some(f) = &self.on_reload {
                    f(result.as_ref().map(|_| ()));
                }
            }
        }
        cur.value.clone()
    }
}

impl<T> fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloading")
            .field("paths", &self.paths)
            .field("check_interval", &self.check_interval)
            .finish_non_exhaustive()
    }
}

/// A certificate resolver (a server's, or a client's for mutual TLS) that re-reads its
/// certificate and key files when they change; a pair that fails to load or does not match is
/// reported and the previous certificate stays in use.
pub type ReloadingCertResolver = Reloading<CertifiedKey>;

impl Reloading<CertifiedKey> {
    /// Loads the pair now (an error here is a configuration error).
    pub fn new(cert: &Path, key: &Path, check_interval: Duration) -> Result<Self, TlsError> {
        Reloading::from_files(
            vec![cert.to_path_buf(), key.to_path_buf()],
            check_interval,
            Box::new(|p| load_certified_key(&p[0], &p[1])),
        )
    }
}

/// A server certificate verifier (webpki's) whose CA bundle is re-read when the file changes
/// (CA rotation).
pub type ReloadingRoots = Reloading<Arc<WebPkiServerVerifier>>;

impl Reloading<Arc<WebPkiServerVerifier>> {
    /// Loads the bundle now (an error here is a configuration error).
    pub fn new(ca_file: &Path, check_interval: Duration) -> Result<Self, TlsError> {
        fn load(p: &[PathBuf]) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
            WebPkiServerVerifier::builder_with_provider(Arc::new(load_roots(&p[0])?), provider())
                .build()
                .map_err(|e| TlsError::Rustls {
                    context: format!("CA {}", p[0].display()),
                    source: rustls::Error::General(e.to_string()),
                })
        }
        Reloading::from_files(vec![ca_file.to_path_buf()], check_interval, Box::new(load))
    }
}

/// A server configuration (see [`server_config`]) rebuilt when its client CA file changes
/// (mutual TLS with a rotated CA): a handshake takes [`Reloading::current`]. Its certificate
/// reloads on its own, through the resolver. A rebuilt configuration starts with an empty
/// session cache, so no session verified against the old CA resumes. Without a client CA it is
/// built once.
///
/// (A reloading client verifier cannot do this: rustls asks it for the CA names to send as
/// hints by reference, which a swappable value cannot hand out.)
pub type ReloadingServerConfig = Reloading<ServerConfig>;

impl Reloading<ServerConfig> {
    /// Builds the configuration now (an error here is a configuration error).
    pub fn new(
        resolver: Arc<ReloadingCertResolver>,
        client_ca: Option<&Path>,
        check_interval: Duration,
    ) -> Result<Self, TlsError> {
        Reloading::from_files(
            client_ca.map(Path::to_path_buf).into_iter().collect(),
            check_interval,
            Box::new(move |p| {
                build_server_config(resolver.clone(), p.first().map(|p| p.as_path()))
            }),
        )
    }
}

impl ServerCertVerifier for ReloadingRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.current().verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

impl ResolvesServerCert for ReloadingCertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for ReloadingCertResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Accepts any server certificate but still checks handshake signatures.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = load_certs(&missing).unwrap_err().to_string();
        assert!(
            e.contains("cannot read certificate file") && e.contains("nope.pem"),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        let e = load_certs(&empty).unwrap_err().to_string();
        assert!(e.contains("BEGIN CERTIFICATE"), "{e}");
        let e = load_private_key(&empty).unwrap_err().to_string();
        assert!(e.contains("BEGIN PRIVATE KEY"), "{e}");
    }

    #[test]
    fn client_config_with_webpki_roots_and_skip_verify() {
        assert!(client_config(&ClientOptions::default()).is_ok());
        let opts = ClientOptions {
            insecure_skip_verify: true,
            ..Default::default()
        };
        assert!(client_config(&opts).is_ok());
        assert!(server_name("db.prod").is_ok());
        assert!(server_name("10.0.0.7").is_ok());
        assert!(server_name("bad name").is_err());
    }
}

//! The TLS setup `https_server` and `tls_echo` share: a self-signed
//! certificate for `localhost` and `127.0.0.1`, made at start (rcgen) and
//! written as PEM where `--cert-out PATH` says, so that a client can trust
//! it (`curl --cacert PATH`, `openssl s_client -CAfile PATH`).
//!
//! One crypto provider, ring (what rcgen uses), is named explicitly:
//! rustls refuses to guess when a build enables two.

use std::io;
use std::sync::Arc;

use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use futures_rustls::rustls::{self, ServerConfig};
use futures_rustls::TlsAcceptor;

/// The listen address and certificate path from the command line
/// (`ADDR --cert-out PATH`).
pub fn args(program: &str) -> io::Result<(String, String)> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || {
        let e = format!("usage: {program} ADDR --cert-out PATH");
        io::Error::new(io::ErrorKind::InvalidInput, e)
    };
    match args.as_slice() {
        [addr, flag, path] if flag == "--cert-out" => Ok((addr.clone(), path.clone())),
        _ => Err(usage()),
    }
}

/// Makes the certificate, writes it to `cert_out`, and returns an acceptor
/// offering `alpn` (most preferred first).
pub fn acceptor(cert_out: &str, alpn: &[&[u8]]) -> io::Result<TlsAcceptor> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let certified = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
    std::fs::write(cert_out, certified.cert.pem())
        .map_err(|e| io::Error::new(e.kind(), format!("writing {cert_out}: {e}")))?;
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(io::Error::other)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

//! `ketang cert`: a self-signed certificate for trying HTTPS on a LAN before a real one (a
//! school's or an ACME certificate) is in place, and how to make browsers trust it.
//!
//! Browsers open cameras only for secure pages, so a classroom PC that reaches the server at
//! `https://192.168.1.10:8443` needs a certificate for that address that it trusts. The
//! certificate is an ECDSA P-256 end-entity certificate for exactly the names and addresses
//! given, valid for server authentication only: trusting it lets it vouch for nothing else.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use sha2::{Digest, Sha256};

/// Longest validity `--days` accepts: Apple platforms refuse longer ones for TLS servers.
pub const MAX_DAYS: u32 = 825;

/// A generated certificate and key, in PEM, with the hashes people check it by.
#[derive(Debug)]
pub struct Generated {
    pub cert_pem: String,
    pub key_pem: String,
    /// SHA-256 of the certificate, `AB:CD:...` (what a browser shows).
    pub sha256: String,
    /// base64 SHA-256 of the public key (SPKI), for Chromium's
    /// `--ignore-certificate-errors-spki-list`.
    pub spki_sha256: String,
}

/// Why no certificate was written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("give at least one --host (the name or IP address classrooms use in the link)")]
    NoHost,
    #[error("--host {0:?}: {1}")]
    BadHost(String, String),
    #[error("--days must be between 1 and {MAX_DAYS}")]
    BadDays,
    #[error("{}: already exists; pass --force to replace it", .0.display())]
    Exists(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the certificate: {0}")]
    Rcgen(String),
}

/// Makes a certificate for `hosts` (DNS names or IP addresses), valid from yesterday (classroom
/// PCs' clocks are often off) for `days` days.
pub fn generate(hosts: &[String], days: u32) -> Result<Generated, CertError> {
    if hosts.is_empty() {
        return Err(CertError::NoHost);
    }
    if days == 0 || days > MAX_DAYS {
        return Err(CertError::BadDays);
    }
    for h in hosts {
        check_host(h)?;
    }
    let rc = |e: rcgen::Error| CertError::Rcgen(e.to_string());
    let mut params = CertificateParams::new(hosts.to_vec()).map_err(rc)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, hosts[0].as_str());
    name.push(DnType::OrganizationName, "Ketang (self-signed)");
    params.distinguished_name = name;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serial: [u8; 16] = rand::random();
    // A positive serial of at most 20 octets (RFC 5280 §4.1.2.2).
    let mut serial = serial.to_vec();
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let (y, m, d) = utc_date(std::time::SystemTime::now() - std::time::Duration::from_secs(86_400));
    params.not_before = rcgen::date_time_ymd(y, m, d);
    params.not_after = params.not_before + rcgen_days(days);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(rc)?;
    let cert = params.self_signed(&key).map_err(rc)?;
    let spki = key.subject_public_key_info();
    Ok(Generated {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        sha256: crate::http::tls::colon_hex(&Sha256::digest(cert.der().as_ref())),
        spki_sha256: base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&spki)),
    })
}

fn rcgen_days(days: u32) -> std::time::Duration {
    std::time::Duration::from_secs(u64::from(days) * 86_400)
}

/// The UTC calendar date of `t`.
fn utc_date(t: std::time::SystemTime) -> (i32, u8, u8) {
    let date = jiff::Timestamp::try_from(t)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    (
        i32::from(date.year()),
        u8::try_from(date.month()).unwrap_or(1),
        u8::try_from(date.day()).unwrap_or(1),
    )
}

fn check_host(h: &str) -> Result<(), CertError> {
    let bad = |why: &str| CertError::BadHost(h.to_owned(), why.to_owned());
    if h.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    if h.is_empty() || h.len() > 253 {
        return Err(bad("must be a host name or an IP address"));
    }
    if h.contains("://") || h.contains(['/', ':']) {
        return Err(bad("give the bare name or address, without scheme or port"));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let labels: Vec<&str> = h.split('.').collect();
    let wildcard_ok = labels.len() > 2 && labels[0] == "*";
    let rest = if wildcard_ok {
        &labels[1..]
    } else {
        &labels[..]
    };
    if !rest.iter().all(|l| label_ok(l)) {
        return Err(bad(
            "a host name has letters, digits and '-' between dots (IDN names in their xn-- form)",
        ));
    }
    Ok(())
}

/// What `ketang cert` wrote, and the text it prints.
#[derive(Debug)]
pub struct Written {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub generated: Generated,
}

/// Writes `cert.pem` and `key.pem` (mode 600) into `out`, creating it (mode 700).
pub fn write(out: &Path, hosts: &[String], days: u32, force: bool) -> Result<Written, CertError> {
    let generated = generate(hosts, days)?;
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| CertError::Io { path: p, source }
    };
    create_private_dir(out).map_err(io(out))?;
    // Absolute paths in what is printed: the server may run from another directory.
    let out = &out.canonicalize().map_err(io(out))?;
    let cert = out.join("cert.pem");
    let key = out.join("key.pem");
    for p in [&cert, &key] {
        if p.exists() && !force {
            return Err(CertError::Exists(p.clone()));
        }
    }
    // The key first: a server watching the pair sees the new certificate arrive last, and
    // so never a new certificate with the old key.
    write_private(&key, generated.key_pem.as_bytes()).map_err(io(&key))?;
    std::fs::write(&cert, generated.cert_pem.as_bytes()).map_err(io(&cert))?;
    Ok(Written {
        cert,
        key,
        generated,
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Replaces `path` by a file only its owner can read, written whole before it takes the name.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("pem.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The instructions printed after writing: the config lines and how to trust the certificate.
pub fn instructions(w: &Written, hosts: &[String]) -> String {
    let host = &hosts[0];
    let url_host = if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let (cert, key) = (w.cert.display(), w.key.display());
    let lines = [
        format!("Wrote {cert} and {key} (for {}).", hosts.join(", ")),
        String::new(),
        "Use them in the server's config:".into(),
        String::new(),
        "[http]".into(),
        "listen = \"0.0.0.0:8443\"".into(),
        format!("tls_cert = \"{cert}\""),
        format!("tls_key = \"{key}\""),
        format!("public_url = \"https://{url_host}:8443\""),
        String::new(),
        "The certificate is self-signed: browsers trust it only where it was imported. On each"
            .into(),
        "classroom PC, check that the fingerprint shown matches".into(),
        format!("  SHA-256 {}", w.generated.sha256),
        format!("and import {cert}:"),
        "  - Windows (as administrator): certutil -addstore -f Root cert.pem".into(),
        "  - macOS: sudo security add-trusted-cert -d -r trustRoot \\".into(),
        "      -k /Library/Keychains/System.keychain cert.pem".into(),
        "  - Linux, Chrome/Chromium (libnss3-tools):".into(),
        "      certutil -d sql:$HOME/.pki/nssdb -A -t P,, -n ketang -i cert.pem".into(),
        "  - Firefox: Settings > Privacy & Security > Certificates > View Certificates >".into(),
        format!("      Servers > Add Exception, for https://{url_host}:8443"),
        "  - Trials with Chromium only: start it with".into(),
        format!(
            "      --ignore-certificate-errors-spki-list={}",
            w.generated.spki_sha256
        ),
        "A running server picks up certificate files replaced in place within seconds. For".into(),
        "lasting use, get a certificate from the school's or a public authority (ACME).".into(),
    ];
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_checked_before_anything_is_made() {
        assert!(matches!(generate(&[], 30), Err(CertError::NoHost)));
        for bad in [
            "https://a.test",
            "a.test:8443",
            "a..test",
            "-a.test",
            "a b",
            "",
        ] {
            assert!(
                matches!(generate(&[bad.to_owned()], 30), Err(CertError::BadHost(..))),
                "{bad:?} accepted"
            );
        }
        assert!(matches!(
            generate(&["a.test".to_owned()], 0),
            Err(CertError::BadDays)
        ));
        assert!(matches!(
            generate(&["a.test".to_owned()], MAX_DAYS + 1),
            Err(CertError::BadDays)
        ));
    }

    #[test]
    fn names_and_addresses_become_a_certificate_rustls_can_serve() {
        let hosts = ["ketang.school.lan", "192.168.1.10", "::1", "*.ketang.lan"].map(String::from);
        let g = generate(&hosts, 365).expect("generated");
        assert!(g.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(g.key_pem.contains("PRIVATE KEY"));
        assert_eq!(g.spki_sha256.len(), 44, "base64 of 32 bytes");
        let dir = tempfile::tempdir().unwrap();
        let w = write(dir.path(), &hosts, 365, false).expect("written");
        let key = crate::http::tls::load(&crate::http::tls::TlsFiles {
            cert: w.cert.clone(),
            key: w.key.clone(),
        })
        .expect("rustls loads it");
        assert_eq!(crate::http::tls::fingerprint(&key), w.generated.sha256);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&w.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the key is private");
        }
        assert!(matches!(
            write(dir.path(), &hosts, 365, false),
            Err(CertError::Exists(_))
        ));
        write(dir.path(), &hosts, 365, true).expect("--force replaces");
        let text = instructions(&w, &hosts);
        assert!(text.contains(&w.generated.sha256) && text.contains(&w.generated.spki_sha256));
    }
}

//! Certificates made at test time (rcgen): a CA, server and client certificates it signs, written
//! as PEM files into a temporary directory. Shared by the TCP tests of `ferrolb-proto` and
//! `ferrolbctl` (included by path).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The name the server certificates carry; clients dial 127.0.0.1 and expect this name.
pub const SERVER_NAME: &str = "announcer.ferrolb.test";

/// A CA that signs certificates into `dir`.
pub struct Ca {
    name: String,
    params: CertificateParams,
    key: KeyPair,
    /// Its certificate, as a PEM file.
    pub cert: PathBuf,
}

/// A certificate and its key, as PEM files.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    /// A new self-signed CA called `name`, its certificate written to `dir/<name>-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, format!("{name} CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let path = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&path, cert.pem()).unwrap();
        Self { name: name.to_owned(), params, key, cert: path }
    }

    fn issue(&self, dir: &Path, what: &str, names: Vec<String>, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, format!("{} {what}", self.name));
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let leaf = Leaf {
            cert: dir.join(format!("{}-{what}.pem", self.name)),
            key: dir.join(format!("{}-{what}-key.pem", self.name)),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }

    /// A server certificate for [`SERVER_NAME`] (and localhost).
    pub fn server(&self, dir: &Path) -> Leaf {
        self.issue(
            dir,
            "server",
            vec![SERVER_NAME.into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate.
    pub fn client(&self, dir: &Path) -> Leaf {
        self.issue(dir, "client", vec!["ferrolb-nic-agent".into()], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

//! What a path check must add for PEC signer certificates: the name
//! constraints of every CA above the signer (AgID CA1 lists the providers'
//! PEC domains and organisations), and that the signer certificate is meant
//! for S/MIME signing. RFC 5280 §4.2.1.10 for the matching rules.

use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, NameConstraints, SubjectAltName};
use x509_cert::name::{Name, RelativeDistinguishedName};

use super::chain::subject;

const EMAIL_PROTECTION: &str = "1.3.6.1.5.5.7.3.4";
const ANY_EXTENDED_KEY_USAGE: &str = "2.5.29.37.0";

/// The e-mail addresses in the certificate's subjectAltName (rfc822Name).
pub(super) fn emails(cert: &Certificate) -> Vec<String> {
    match cert.tbs_certificate.get::<SubjectAltName>() {
        Ok(Some((_, san))) => san
            .0
            .iter()
            .filter_map(|n| match n {
                GeneralName::Rfc822Name(s) => Some(s.as_str().to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Why `signer` may not sign S/MIME, if so: an extendedKeyUsage without
/// emailProtection, or a keyUsage with neither digitalSignature nor
/// nonRepudiation. Absent extensions do not restrict (RFC 5280).
pub(super) fn usage_problem(signer: &Certificate) -> Option<String> {
    match signer.tbs_certificate.get::<ExtendedKeyUsage>() {
        Ok(Some((_, eku))) => {
            if !eku.0.iter().any(|o| matches!(o.to_string().as_str(), EMAIL_PROTECTION | ANY_EXTENDED_KEY_USAGE)) {
                return Some("signer certificate is not for e-mail protection (extendedKeyUsage)".into());
            }
        }
        Ok(None) => {}
        Err(_) => return Some("signer certificate has an unreadable extendedKeyUsage".into()),
    }
    match signer.tbs_certificate.get::<KeyUsage>() {
        Ok(Some((_, ku))) if !ku.digital_signature() && !ku.non_repudiation() => {
            Some("signer certificate may not sign (keyUsage has neither digitalSignature nor nonRepudiation)".into())
        }
        Ok(_) => None,
        Err(_) => Some("signer certificate has an unreadable keyUsage".into()),
    }
}

/// The first name constraint of a CA in `path[1..]` that `path[0]` (the
/// signer) breaks: its addresses against rfc822Name subtrees, its subject
/// against directoryName subtrees. Other name forms are not used by PEC
/// signers and are not checked.
pub(super) fn name_problem(path: &[&Certificate]) -> Option<String> {
    let (signer, cas) = path.split_first()?;
    let addresses = emails(signer);
    for ca in cas {
        let nc = match ca.tbs_certificate.get::<NameConstraints>() {
            Ok(Some((_, nc))) => nc,
            Ok(None) => continue,
            Err(_) => return Some(format!("CA certificate {} has unreadable name constraints", subject(ca))),
        };
        let permitted: Vec<&GeneralName> = nc.permitted_subtrees.iter().flatten().map(|s| &s.base).collect();
        let excluded: Vec<&GeneralName> = nc.excluded_subtrees.iter().flatten().map(|s| &s.base).collect();
        let permitted_mail: Vec<&str> = permitted.iter().filter_map(|n| rfc822(n)).collect();
        if !permitted_mail.is_empty() {
            if addresses.is_empty() {
                return Some(format!("signer certificate has no e-mail address to check against the name constraints of {}", subject(ca)));
            }
            if let Some(a) = addresses.iter().find(|a| !permitted_mail.iter().any(|c| mail_matches(a, c))) {
                return Some(format!("signer address {a} is outside the domains that {} may certify (name constraints)", subject(ca)));
            }
        }
        if let Some(a) = addresses.iter().find(|a| excluded.iter().filter_map(|n| rfc822(n)).any(|c| mail_matches(a, c))) {
            return Some(format!("signer address {a} is excluded by the name constraints of {}", subject(ca)));
        }
        let subject_dn = &signer.tbs_certificate.subject;
        let permitted_dn: Vec<&Name> = permitted.iter().filter_map(|n| directory(n)).collect();
        if !permitted_dn.is_empty() && !permitted_dn.iter().any(|c| dn_within(subject_dn, c)) {
            return Some(format!(
                "signer {} is outside the organisations that {} may certify (name constraints)",
                subject(signer),
                subject(ca)
            ));
        }
        if excluded.iter().filter_map(|n| directory(n)).any(|c| dn_within(subject_dn, c)) {
            return Some(format!("signer {} is excluded by the name constraints of {}", subject(signer), subject(ca)));
        }
    }
    None
}

fn rfc822(name: &GeneralName) -> Option<&str> {
    match name {
        GeneralName::Rfc822Name(s) => Some(s.as_str()),
        _ => None,
    }
}

fn directory(name: &GeneralName) -> Option<&Name> {
    match name {
        GeneralName::DirectoryName(n) => Some(n),
        _ => None,
    }
}

/// RFC 5280 rfc822Name constraint: a whole address, a host (`example.it`:
/// addresses at exactly that host), or a domain (`.example.it`: any host below it).
pub(super) fn mail_matches(address: &str, constraint: &str) -> bool {
    let constraint = constraint.to_ascii_lowercase();
    if constraint.contains('@') {
        return address.eq_ignore_ascii_case(&constraint);
    }
    let Some((_, host)) = address.rsplit_once('@') else { return false };
    let host = host.to_ascii_lowercase();
    match constraint.strip_prefix('.') {
        Some(_) => host.ends_with(&constraint),
        None => host == constraint,
    }
}

/// Whether `subject` lies in the subtree `base`: base's RDNs are the first
/// RDNs of the subject, compared by their string form (attribute types and
/// values, case-insensitively), so PrintableString vs UTF8String does not matter.
fn dn_within(subject: &Name, base: &Name) -> bool {
    let text = |r: &RelativeDistinguishedName| r.to_string().to_lowercase();
    base.0.len() <= subject.0.len() && base.0.iter().zip(subject.0.iter()).all(|(b, s)| text(b) == text(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc822_matching_table() {
        let cases = [
            ("posta-certificata@sicurezzapostale.it", "sicurezzapostale.it", true),
            ("posta-certificata@SicurezzaPostale.IT", "sicurezzapostale.it", true),
            ("x@pro.sicurezzapostale.it", "sicurezzapostale.it", false),
            ("x@pro.sicurezzapostale.it", ".sicurezzapostale.it", true),
            ("x@sicurezzapostale.it", ".sicurezzapostale.it", false),
            ("x@evilsicurezzapostale.it", ".sicurezzapostale.it", false),
            ("x@evil.it", "sicurezzapostale.it", false),
            ("root@pec.it", "root@pec.it", true),
            ("other@pec.it", "root@pec.it", false),
            ("no-at-sign", "pec.it", false),
        ];
        for (address, constraint, want) in cases {
            assert_eq!(mail_matches(address, constraint), want, "{address} vs {constraint}");
        }
    }
}

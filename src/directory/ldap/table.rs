//! The member table one refresh produces: directory users and group
//! memberships turned into each mailbox's members, merged with the static
//! `[[mailbox.user]]` entries (rights are the union), each right with where
//! it comes from. Pure: no I/O, so every rule is unit-tested.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::groups::normalize_dn;
use crate::config::MailboxConfig;
use crate::directory::{Grant, Member, Rights, Source};

/// A user entry as read from the directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirUser {
    /// Normalized DN.
    pub dn: String,
    /// The primary address (`mail`, or AD's `SMTP:` proxy address).
    pub mail: String,
    /// Further addresses the user may send from (AD `smtp:` proxy addresses).
    pub aliases: Vec<String>,
    /// Other names the user logs in with (`uid`, `sAMAccountName`).
    pub logins: Vec<String>,
    pub pin_hash: Option<String>,
}

/// What one refresh read.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub users: Vec<DirUser>,
    /// Normalized configured group DN -> normalized user DNs (nested included).
    pub members: HashMap<String, BTreeSet<String>>,
}

/// The answer lookups are served from until the next refresh.
#[derive(Debug, Default)]
pub struct Table {
    pub members: HashMap<String, Arc<[Member]>>,
    pub grants: HashMap<String, Arc<[Grant]>>,
    /// Lower-case login (address, alias or login attribute) -> primary address.
    pub logins: HashMap<String, String>,
    pub users: usize,
}

fn set(rights: &mut Rights, right: &str) {
    match right {
        "send" => rights.send = true,
        "receive" => rights.receive = true,
        "anomalies" => rights.anomalies = true,
        "admin" => rights.admin = true,
        _ => {}
    }
}

/// One mailbox's entries in order: the static users first (file order),
/// then directory users by address.
#[derive(Default)]
struct Entries {
    list: Vec<Grant>,
    pins: Vec<Option<String>>,
    index: HashMap<String, usize>,
}

impl Entries {
    fn add(&mut self, address: &str, right: &'static str, source: Source, pin: Option<&String>) {
        let key = address.to_ascii_lowercase();
        let i = *self.index.entry(key).or_insert_with(|| {
            self.list.push(Grant { address: address.to_owned(), rights: Rights::default(), sources: Vec::new() });
            self.pins.push(None);
            self.list.len() - 1
        });
        set(&mut self.list[i].rights, right);
        if right != "none" && !self.list[i].sources.iter().any(|(r, s)| *r == right && *s == source) {
            self.list[i].sources.push((right, source));
        }
        if self.pins[i].is_none() {
            self.pins[i] = pin.cloned();
        }
    }
}

pub fn build(mailboxes: &[MailboxConfig], fetched: &Fetched) -> Table {
    let by_dn: HashMap<&str, &DirUser> = fetched.users.iter().map(|u| (u.dn.as_str(), u)).collect();
    let mut table = Table { users: fetched.users.len(), ..Default::default() };
    for m in mailboxes {
        let mut e = Entries::default();
        for u in &m.users {
            for (right, on) in [("send", u.send), ("receive", u.receive), ("anomalies", u.anomalies), ("admin", u.admin)] {
                if on {
                    e.add(&u.address, right, Source::Config, None);
                }
            }
            if !(u.send || u.receive || u.anomalies || u.admin) {
                e.add(&u.address, "none", Source::Config, None);
            }
        }
        // Directory users sorted by address, so the order is stable across refreshes.
        let mut found: Vec<(&DirUser, &'static str, &String)> = Vec::new();
        for (right, groups) in m.groups.by_right() {
            for g in groups {
                for dn in fetched.members.get(&normalize_dn(g)).into_iter().flatten() {
                    if let Some(user) = by_dn.get(dn.as_str()) {
                        found.push((user, right, g));
                    }
                }
            }
        }
        found.sort_by_key(|f| f.0.mail.to_ascii_lowercase());
        for (user, right, group) in &found {
            e.add(&user.mail, right, Source::Group((*group).clone()), user.pin_hash.as_ref());
        }
        // An alias may send as its user; mail and receipts go to the primary address only.
        for (user, right, group) in &found {
            if *right == "send" {
                for alias in &user.aliases {
                    e.add(alias, "send", Source::Group((*group).clone()), user.pin_hash.as_ref());
                }
            }
        }
        let members: Vec<Member> = e
            .list
            .iter()
            .zip(&e.pins)
            .map(|(g, pin)| Member { address: g.address.clone(), rights: g.rights, pin_hash: pin.clone() })
            .collect();
        table.members.insert(m.id.clone(), Arc::from(members));
        table.grants.insert(m.id.clone(), Arc::from(e.list));
    }
    for u in &fetched.users {
        for login in std::iter::once(&u.mail).chain(&u.aliases).chain(&u.logins) {
            table.logins.entry(login.to_ascii_lowercase()).or_insert_with(|| u.mail.clone());
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GroupsConfig, UserConfig};

    fn user(dn: &str, mail: &str) -> DirUser {
        DirUser { dn: normalize_dn(dn), mail: mail.into(), ..Default::default() }
    }

    fn fetched() -> Fetched {
        let mut anna = user("uid=anna,dc=x", "anna@x.it");
        anna.aliases = vec!["a.bianchi@x.it".into()];
        anna.logins = vec!["anna".into()];
        anna.pin_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
        let members = [
            ("cn=send,dc=x", vec!["uid=anna,dc=x", "uid=mario,dc=x"]),
            ("cn=recv,dc=x", vec!["uid=anna,dc=x"]),
            ("cn=admins,dc=x", vec!["uid=mario,dc=x", "uid=ghost,dc=x"]),
        ]
        .into_iter()
        .map(|(g, us)| (normalize_dn(g), us.into_iter().map(normalize_dn).collect()))
        .collect();
        Fetched { users: vec![user("uid=mario,dc=x", "Mario@x.it"), anna], members }
    }

    fn mailbox() -> MailboxConfig {
        MailboxConfig {
            id: "legal".into(),
            users: vec![UserConfig { address: "mario@x.it".into(), send: false, anomalies: false, ..Default::default() }],
            groups: GroupsConfig {
                send: vec!["CN=Send,dc=x".into()],
                receive: vec!["cn=recv,dc=x".into()],
                admin: vec!["cn=admins,dc=x".into()],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn merges_static_and_directory_rights_with_their_sources() {
        let t = build(&[mailbox()], &fetched());
        let m = &t.members["legal"];
        let view: Vec<(&str, Rights)> = m.iter().map(|m| (m.address.as_str(), m.rights)).collect();
        let r = |send, receive, anomalies, admin| Rights { send, receive, anomalies, admin };
        assert_eq!(
            view,
            [
                ("mario@x.it", r(true, true, false, true)),
                ("anna@x.it", r(true, true, false, false)),
                ("a.bianchi@x.it", r(true, false, false, false)),
            ]
        );
        let g = &t.grants["legal"][0];
        assert_eq!(
            g.sources,
            [
                ("receive", Source::Config),
                ("send", Source::Group("CN=Send,dc=x".into())),
                ("admin", Source::Group("cn=admins,dc=x".into()))
            ]
        );
        assert_eq!(m[1].pin_hash.as_deref(), Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"));
        assert_eq!(m[0].pin_hash, None);
        assert_eq!(t.users, 2);
    }

    #[test]
    fn logins_map_to_the_primary_address() {
        let t = build(&[mailbox()], &fetched());
        assert_eq!(t.logins["anna"], "anna@x.it");
        assert_eq!(t.logins["a.bianchi@x.it"], "anna@x.it");
        assert_eq!(t.logins["mario@x.it"], "Mario@x.it");
    }

    #[test]
    fn a_user_out_of_every_group_is_not_a_member() {
        let mut f = fetched();
        f.members.get_mut("cn=send,dc=x").unwrap().remove("uid=anna,dc=x");
        f.members.get_mut("cn=recv,dc=x").unwrap().clear();
        let t = build(&[mailbox()], &f);
        let addresses: Vec<&str> = t.members["legal"].iter().map(|m| m.address.as_str()).collect();
        assert_eq!(addresses, ["mario@x.it"]);
        assert!(build(&[MailboxConfig { id: "hr".into(), ..Default::default() }], &f).members["hr"].is_empty());
    }
}

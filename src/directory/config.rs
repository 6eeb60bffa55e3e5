//! The directory of the configuration file: `[[mailbox.user]]` lists the
//! members of each mailbox, `[[smtp.account]]` the listener AUTH logins.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use ring::digest::{SHA256, digest};

use super::{Directory, Identity, Member, Result, Rights};
use crate::config::{Config, Secrets};
use crate::util::constant_time_eq;

pub struct StaticDirectory {
    members: HashMap<String, Arc<[Member]>>,
    accounts: Vec<Account>,
}

/// An `[[smtp.account]]`: the password is kept only as its SHA-256, compared
/// in constant time, so neither the length nor a common prefix leaks through timing.
struct Account {
    username: String,
    password_sha256: Vec<u8>,
    address: String,
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    digest(&SHA256, bytes).as_ref().to_vec()
}

impl StaticDirectory {
    pub fn new(config: &Config, secrets: &Secrets) -> Self {
        let members = config
            .mailboxes
            .iter()
            .map(|m| {
                let list: Vec<Member> = m
                    .users
                    .iter()
                    .map(|u| Member {
                        address: u.address.clone(),
                        rights: Rights { send: u.send, receive: u.receive, anomalies: u.anomalies, admin: u.admin },
                        pin_hash: None,
                    })
                    .collect();
                (m.id.clone(), Arc::from(list))
            })
            .collect();
        let accounts = config
            .smtp
            .accounts
            .iter()
            .map(|a| Account {
                username: a.username.clone(),
                password_sha256: sha256(secrets.accounts.get(&a.username).map_or("", |p| p.expose()).as_bytes()),
                address: a.address.clone(),
            })
            .collect();
        Self { members, accounts }
    }

    fn account(&self, login: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.username == login)
    }
}

#[async_trait]
impl Directory for StaticDirectory {
    fn kind(&self) -> &'static str {
        "static"
    }

    async fn members(&self, mailbox: &str) -> Result<Arc<[Member]>> {
        Ok(self.members.get(mailbox).cloned().unwrap_or_else(|| Arc::from(Vec::new())))
    }

    async fn authenticate(&self, login: &str, password: &str) -> Result<Option<Identity>> {
        let given = sha256(password.as_bytes());
        let account = self.account(login);
        // An unknown user costs the same comparison as a wrong password.
        let expected = account.map_or(&[0u8; 32][..], |a| &a.password_sha256);
        let ok = constant_time_eq(expected, &given);
        Ok(account.filter(|_| ok).map(|a| Identity { login: a.username.clone(), address: a.address.clone() }))
    }

    async fn identity(&self, login: &str) -> Result<Option<Identity>> {
        Ok(self.account(login).map(|a| Identity { login: a.username.clone(), address: a.address.clone() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn directory() -> StaticDirectory {
        let mut config = Config::default();
        config.mailboxes.push(crate::config::MailboxConfig {
            id: "legal".into(),
            users: vec![
                crate::config::UserConfig { address: "mario@x.it".into(), admin: true, ..Default::default() },
                crate::config::UserConfig { address: "anna@x.it".into(), send: false, ..Default::default() },
            ],
            ..Default::default()
        });
        config.smtp.accounts.push(crate::config::SmtpAccountConfig {
            username: "scanner".into(),
            address: "mario@x.it".into(),
            ..Default::default()
        });
        let mut secrets = Secrets::default();
        secrets.accounts.insert("scanner".into(), Secret::new("pw"));
        StaticDirectory::new(&config, &secrets)
    }

    #[tokio::test]
    async fn members_keep_order_and_rights() {
        let d = directory();
        let m = d.members("legal").await.unwrap();
        assert_eq!(m.iter().map(|m| m.address.as_str()).collect::<Vec<_>>(), ["mario@x.it", "anna@x.it"]);
        assert!(m[0].rights.admin && m[0].rights.send && !m[1].rights.send && m[1].rights.receive);
        assert!(d.members("nope").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn logins() {
        let d = directory();
        let id = d.authenticate("scanner", "pw").await.unwrap().unwrap();
        assert_eq!((id.login.as_str(), id.address.as_str()), ("scanner", "mario@x.it"));
        assert_eq!(d.authenticate("scanner", "wrong").await.unwrap(), None);
        assert_eq!(d.authenticate("Scanner", "pw").await.unwrap(), None, "usernames match exactly");
        assert_eq!(d.authenticate("nobody", "").await.unwrap(), None);
        assert_eq!(d.identity("scanner").await.unwrap().unwrap().address, "mario@x.it");
    }
}

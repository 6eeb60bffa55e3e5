//! LDAP search filters (RFC 4515), built from configuration and user input.
//!
//! Every value that comes from outside (a login typed at AUTH, a group DN
//! from the file) is escaped, so `*` or `)` in a login cannot widen a search.

/// Escapes an assertion value: `*`, `(`, `)`, `\` and NUL become `\2a`,
/// `\28`, `\29`, `\5c`, `\00` (RFC 4515 section 3); everything else,
/// UTF-8 included, is kept as it is.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// The user entry a login names: its mail address or its login attribute.
pub fn user_by_login(user_filter: &str, mail_attribute: &str, login_attribute: &str, login: &str) -> String {
    let v = escape(login);
    format!("(&{user_filter}(|({mail_attribute}={v})({login_attribute}={v})))")
}

/// Active Directory: the users of `user_filter` in `group`, nested groups
/// included (the LDAP_MATCHING_RULE_IN_CHAIN rule).
pub fn ad_members_in_chain(user_filter: &str, group_dn: &str) -> String {
    format!("(&{user_filter}(memberOf:1.2.840.113556.1.4.1941:={}))", escape(group_dn))
}

/// The groups whose `member` lists are read for nested resolution (OpenLDAP).
pub const GROUPS: &str = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))";

/// A filter starts with `(`, ends with the `)` that closes it, and every
/// parenthesis not escaped is balanced.
pub fn is_balanced(filter: &str) -> bool {
    let f = filter.trim();
    if !f.starts_with('(') || !f.ends_with(')') {
        return false;
    }
    let mut depth = 0usize;
    for (i, c) in f.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = match depth.checked_sub(1) {
                    Some(d) => d,
                    None => return false,
                };
                if depth == 0 && i + 1 != f.len() {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_rfc4515_specials_and_keeps_utf8() {
        assert_eq!(escape("a*b(c)d\\e\0f"), "a\\2ab\\28c\\29d\\5ce\\00f");
        assert_eq!(escape("niccolò@x.it"), "niccolò@x.it");
        assert_eq!(escape(""), "");
    }

    #[test]
    fn a_login_cannot_widen_the_search() {
        let f = user_by_login("(objectClass=inetOrgPerson)", "mail", "uid", "*)(uid=*");
        assert_eq!(f, "(&(objectClass=inetOrgPerson)(|(mail=\\2a\\29\\28uid=\\2a)(uid=\\2a\\29\\28uid=\\2a)))");
        assert!(is_balanced(&f));
    }

    #[test]
    fn ad_chain_filter() {
        assert_eq!(
            ad_members_in_chain("(objectClass=user)", "CN=PEC (Legale),OU=G,DC=x"),
            "(&(objectClass=user)(memberOf:1.2.840.113556.1.4.1941:=CN=PEC \\28Legale\\29,OU=G,DC=x))"
        );
    }

    #[test]
    fn balance() {
        for ok in ["(a=b)", "(&(a=b)(c=d))", " (objectClass=*) "] {
            assert!(is_balanced(ok), "{ok}");
        }
        for bad in ["a=b", "(a=b", "(a=b))", "(a=b)(c=d)", ")(", ""] {
            assert!(!is_balanced(bad), "{bad}");
        }
    }
}

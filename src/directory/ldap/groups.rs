//! Nested groupOfNames resolution (OpenLDAP has no in-chain matching rule):
//! a group's `member` values are users or other groups; the users of a group
//! are found by walking the member graph, at most [`MAX_DEPTH`] levels deep,
//! each group visited once (so a cycle ends the walk instead of looping).

use std::collections::{BTreeSet, HashMap, HashSet};

/// Nesting deeper than this is ignored (and reported).
pub const MAX_DEPTH: usize = 16;

/// A DN compared the way directories compare them for our purposes: ASCII
/// case-insensitive and without blanks around the separators.
pub fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| match rdn.split_once('=') {
            Some((a, v)) => format!("{}={}", a.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase()),
            None => rdn.trim().to_ascii_lowercase(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// What a walk found: the user DNs (normalized) and whether it was cut at the depth limit.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    pub users: BTreeSet<String>,
    pub truncated: bool,
}

/// The users (keys of `users`, normalized) reachable from `group`.
/// `groups` maps a normalized group DN to its normalized member DNs.
pub fn resolve(group: &str, groups: &HashMap<String, Vec<String>>, users: &HashSet<String>) -> Resolved {
    let mut out = Resolved::default();
    let mut seen = HashSet::new();
    let mut level = vec![normalize_dn(group)];
    for depth in 0.. {
        if level.is_empty() {
            break;
        }
        if depth > MAX_DEPTH {
            out.truncated = true;
            break;
        }
        let mut next = Vec::new();
        for g in level {
            if !seen.insert(g.clone()) {
                continue;
            }
            for m in groups.get(&g).into_iter().flatten() {
                if users.contains(m) {
                    out.users.insert(m.clone());
                } else if groups.contains_key(m) {
                    next.push(m.clone());
                }
            }
        }
        level = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> HashMap<String, Vec<String>> {
        edges.iter().map(|(g, ms)| (normalize_dn(g), ms.iter().map(|m| normalize_dn(m)).collect())).collect()
    }

    fn users(list: &[&str]) -> HashSet<String> {
        list.iter().map(|u| normalize_dn(u)).collect()
    }

    #[test]
    fn normalizes_case_and_blanks() {
        assert_eq!(normalize_dn("CN=Mario Rossi, OU=People,dc=X"), "cn=mario rossi,ou=people,dc=x");
    }

    #[test]
    fn nested_groups_and_cycles() {
        let g = graph(&[
            ("cn=send,dc=x", &["uid=a,dc=x", "cn=inner,dc=x", "cn=gone,dc=x"]),
            ("cn=inner,dc=x", &["uid=b,dc=x", "cn=send,dc=x"]), // cycle back
            ("cn=other,dc=x", &["uid=c,dc=x"]),
        ]);
        let u = users(&["uid=a,dc=x", "uid=b,dc=x", "uid=c,dc=x"]);
        let r = resolve("CN=Send, dc=x", &g, &u);
        assert_eq!(r.users.into_iter().collect::<Vec<_>>(), ["uid=a,dc=x", "uid=b,dc=x"]);
        assert!(!r.truncated);
        assert!(resolve("cn=unknown,dc=x", &g, &u).users.is_empty());
    }

    #[test]
    fn depth_is_bounded() {
        let names: Vec<String> = (0..=MAX_DEPTH + 2).map(|i| format!("cn=g{i},dc=x")).collect();
        let mut g: HashMap<String, Vec<String>> = HashMap::new();
        for w in names.windows(2) {
            g.insert(w[0].clone(), vec![w[1].clone()]);
        }
        g.insert(names[MAX_DEPTH].clone(), vec!["uid=reachable,dc=x".into(), names[MAX_DEPTH + 1].clone()]);
        g.insert(names[MAX_DEPTH + 2].clone(), vec!["uid=deep,dc=x".into()]);
        let u = users(&["uid=reachable,dc=x", "uid=deep,dc=x"]);
        let r = resolve(&names[0], &g, &u);
        assert_eq!(r.users.into_iter().collect::<Vec<_>>(), ["uid=reachable,dc=x"]);
        assert!(r.truncated);
    }
}

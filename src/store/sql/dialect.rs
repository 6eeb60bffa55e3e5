//! The SQL spelling of each backend: queries are written once, for SQLite,
//! and [`to_postgres`] rewrites them for PostgreSQL.

/// Which SQL spelling the database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A query in this dialect, from its SQLite spelling.
    pub fn sql(self, sqlite: &str) -> String {
        match self {
            Dialect::Sqlite => sqlite.to_owned(),
            Dialect::Postgres => to_postgres(sqlite),
        }
    }
}

/// Rewrites a query written for SQLite into PostgreSQL: `?` parameters become
/// `$1, $2, ...` (not inside string literals), `rowid` (insertion order of
/// recipients) becomes the `seq` column, `group_concat` becomes `string_agg`,
/// and `LIKE` becomes `ILIKE` (SQLite's LIKE ignores ASCII case).
pub fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut in_literal = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                in_literal = !in_literal;
                out.push(c);
            }
            '?' if !in_literal => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out.replace("rowid", "seq").replace("group_concat(", "string_agg(").replace(" LIKE ", " ILIKE ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_spelling() {
        assert_eq!(
            to_postgres("SELECT a FROM t WHERE b = ? AND c LIKE ? ESCAPE '\\' AND d = '?' ORDER BY rowid"),
            "SELECT a FROM t WHERE b = $1 AND c ILIKE $2 ESCAPE '\\' AND d = '?' ORDER BY seq"
        );
        assert_eq!(
            to_postgres("SELECT group_concat(x, ',') FROM y WHERE z IN (?, ?, ?)"),
            "SELECT string_agg(x, ',') FROM y WHERE z IN ($1, $2, $3)"
        );
    }
}

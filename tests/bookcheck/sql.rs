//! Check 7: every `chapters-code/**/sql/*.sql` applies cleanly to a fresh
//! PostgreSQL database (one new database per file, from `testkit`).

use std::path::{Path, PathBuf};

use sqlx::postgres::{PgDatabaseError, PgErrorPosition};

use super::{Problem, files_with_extension, line_of, relative};

/// Every `.sql` file in a `sql/` directory under `chapters-code/`, sorted.
pub fn sql_files(root: &Path) -> (Vec<PathBuf>, Vec<Problem>) {
    let dir = root.join("chapters-code");
    if !dir.is_dir() {
        return (Vec::new(), Vec::new());
    }
    let (files, problems) = files_with_extension(root, &dir, "sql");
    let files = files
        .into_iter()
        .filter(|f| {
            f.parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "sql")
        })
        .collect();
    (files, problems)
}

/// Check 7; `None` when PostgreSQL is unreachable and the check was skipped
/// (`testkit` printed the `SKIPPED` line, or panicked if services are required).
pub async fn check(root: &Path) -> Option<Vec<Problem>> {
    let (files, mut problems) = sql_files(root);
    for file in files {
        let rel = relative(root, &file);
        let sql = match std::fs::read_to_string(&file) {
            Ok(s) => s,
            Err(e) => {
                problems.push(Problem::file(rel, format!("cannot read: {e}")));
                continue;
            }
        };
        let db = testkit::postgres(None).await?;
        if let Err(e) = db.apply_sql(&sql).await {
            let line = error_line(&sql, &e);
            let message = format!(
                "does not apply to a fresh PostgreSQL database: {}",
                describe(&e)
            );
            problems.push(match line {
                Some(line) => Problem::at(rel, line, message),
                None => Problem::file(rel, message),
            });
        }
    }
    Some(problems)
}

fn pg_error(e: &sqlx::Error) -> Option<&PgDatabaseError> {
    e.as_database_error()?.try_downcast_ref::<PgDatabaseError>()
}

/// The line of the error, from PostgreSQL's character position in the script.
fn error_line(sql: &str, e: &sqlx::Error) -> Option<usize> {
    let PgErrorPosition::Original(chars) = pg_error(e)?.position()? else {
        return None;
    };
    let byte = sql
        .char_indices()
        .nth(chars.saturating_sub(1))
        .map_or(sql.len(), |(i, _)| i);
    Some(line_of(sql, byte))
}

fn describe(e: &sqlx::Error) -> String {
    match pg_error(e) {
        Some(pg) => {
            let mut s = format!("{} (SQLSTATE {})", pg.message(), pg.code());
            if let Some(detail) = pg.detail() {
                s.push_str(&format!("; {detail}"));
            }
            if let Some(hint) = pg.hint() {
                s.push_str(&format!("; hint: {hint}"));
            }
            s
        }
        None => e.to_string(),
    }
}

//! One dataset of a job file: a table holding exactly one operation's key, that operation's
//! modifiers, and `from` (the dataset it is built from) unless the operation is a read.

use super::operation::{Keys, OPERATIONS, Operation};
use crate::error::{Error, Result};
use serde::Deserialize;

/// A dataset: a read, or one operation on the dataset named by `from`.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The dataset this one is built from; `None` exactly when the operation is a read.
    pub from: Option<String>,
    pub operation: Operation,
}

impl Dataset {
    /// The dataset `name` from its table; errors name the dataset.
    pub fn parse(name: &str, table: toml::Table) -> Result<Self> {
        Self::from_table(table).map_err(|e| Error::Dataset { name: name.to_string(), source: Box::new(e) })
    }

    /// The datasets it reads: `from`, then any other (the right side of a merge).
    pub fn inputs(&self) -> impl Iterator<Item = &str> {
        self.from.as_deref().into_iter().chain(self.operation.other_inputs())
    }

    fn from_table(mut table: toml::Table) -> Result<Self> {
        let from = match table.remove("from") {
            None => None,
            Some(toml::Value::String(from)) => Some(from),
            Some(other) => {
                return Err(Error::Invalid(format!("`from` must name a dataset, not {other}")));
            }
        };
        let op = the_operation(&table)?;
        let name = op.name;
        let operation = Operation::deserialize(toml::Value::Table(toml::Table::from_iter([(
            name.to_string(),
            toml::Value::Table(table),
        )])))
        // toml's error is kept as text (it ends "in `<operation>`"): the crate's `Error` has no
        // variant to hold it.
        .map_err(|e| Error::Invalid(e.to_string().trim_end().replace('\n', " ")))?;
        if operation.is_read() {
            // A read ignores `from`, as it always has.
            return Ok(Dataset { from: None, operation });
        }
        if from.is_none() {
            return Err(Error::Invalid(format!("needs `from = \"<dataset>\"` for its operation ({name})")));
        }
        Ok(Dataset { from, operation })
    }
}

/// The one operation whose key the table holds; every other key must be one of its modifiers.
fn the_operation(table: &toml::Table) -> Result<&'static Keys> {
    let ops = &*OPERATIONS;
    if let Some(key) = table.keys().find(|k| !ops.iter().any(|o| o.keys.contains(&k.as_str()))) {
        return Err(unknown_key(key));
    }
    let present: Vec<&Keys> = ops.iter().filter(|o| table.contains_key(o.name)).collect();
    match present[..] {
        [op] => match table.keys().find(|k| !op.keys.contains(&k.as_str())) {
            Some(key) => Err(misplaced(key)),
            None => Ok(op),
        },
        // Only modifiers: the first one says which operation it needs.
        [] if !table.is_empty() => Err(misplaced(table.keys().next().map_or("", String::as_str))),
        _ => Err(Error::Invalid(format!(
            "must have exactly one operation ({}); it has {}{}",
            ops.iter().map(|o| o.name).collect::<Vec<_>>().join(", "),
            present.len(),
            if present.is_empty() {
                String::new()
            } else {
                format!(": {}", present.iter().map(|o| o.name).collect::<Vec<_>>().join(", "))
            }
        ))),
    }
}

fn unknown_key(key: &str) -> Error {
    let ops = &*OPERATIONS;
    let modifiers: Vec<String> = ops
        .iter()
        .filter(|o| o.modifiers().next().is_some())
        .map(|o| format!("{} with {}", o.modifiers().collect::<Vec<_>>().join(", "), o.name))
        .collect();
    Error::Invalid(format!(
        "unknown key `{key}` (a dataset takes `from`, one operation: {}; and its modifiers: {})",
        ops.iter().map(|o| o.name).collect::<Vec<_>>().join(", "),
        modifiers.join("; ")
    ))
}

/// A modifier without its operation: `groupby` needs `agg = { ... }`.
fn misplaced(key: &str) -> Error {
    let ops: Vec<String> = OPERATIONS
        .iter()
        .filter(|o| o.modifiers().any(|m| m == key))
        .map(|op| format!("`{} = {}`", op.name, placeholder(op.name)))
        .collect();
    if ops.is_empty() {
        unknown_key(key)
    } else {
        Error::Invalid(format!("`{key}` needs {}", ops.join(" or ")))
    }
}

/// How an operation's value looks, in messages about its modifiers.
fn placeholder(op: &str) -> &'static str {
    // Of the operations with modifiers, `read_csv` takes a location; the rest take a table.
    if op.starts_with("read_") { "\"...\"" } else { "{ ... }" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    fn err(text: &str) -> String {
        Dataset::parse("d", table(text)).unwrap_err().to_string()
    }

    #[test]
    fn exactly_one_operation() {
        let e = err("from = 'a'\nfilter = 'x > 1'\nselect = ['x']");
        assert!(
            e.starts_with(
                "dataset 'd': must have exactly one operation (read_parquet, read_csv, read_json, filter"
            ),
            "{e}"
        );
        assert!(e.ends_with("it has 2: filter, select"), "{e}");
        let e = err("from = 'a'");
        assert!(e.contains("exactly one operation") && e.ends_with("it has 0"), "{e}");
        let d = Dataset::parse("d", table("from = 'a'\nhead = 3")).unwrap();
        assert!(matches!(d.operation, Operation::Head(ref h) if h.head == 3));
        assert_eq!(d.inputs().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn modifiers_need_their_operation() {
        let e = err("from = 'a'\ngroupby = ['k']\nfilter = 'x > 1'");
        assert_eq!(e, "dataset 'd': `groupby` needs `agg = { ... }`");
        let e = err("from = 'a'\nsplit_out = 4");
        assert_eq!(e, "dataset 'd': `split_out` needs `agg = { ... }`");
        let e = err("read_parquet = 'x'\nheader = false");
        assert_eq!(e, "dataset 'd': `header` needs `read_csv = \"...\"`");
        let e = err("encoding = 'latin-1'");
        assert_eq!(e, "dataset 'd': `encoding` needs `read_csv = \"...\"` or `read_json = \"...\"`");
        let d = Dataset::parse("d", table("read_csv = 'x'\nheader = false\ndelimiter = ';'")).unwrap();
        let Operation::ReadCsv(csv) = &d.operation else { panic!("{d:?}") };
        assert_eq!((csv.options().unwrap().has_header, csv.options().unwrap().delimiter), (false, b';'));
    }

    #[test]
    fn unknown_keys_and_missing_from_name_the_dataset() {
        let e = err("from = 'a'\nfliter = 'x > 1'");
        assert!(e.starts_with("dataset 'd': unknown key `fliter`"), "{e}");
        assert!(e.contains("groupby, split_out, split_every with agg"), "{e}");
        let e = err("filter = 'x > 1'");
        assert!(e.starts_with("dataset 'd': needs `from = \"<dataset>\"`"), "{e}");
        let e = err("from = 'a'\nmerge = { right = 'b', onn = ['k'] }");
        assert!(e.starts_with("dataset 'd': unknown field `onn`") && e.ends_with("in `merge`"), "{e}");
        let e = err("from = 'a'\nhead = 'ten'");
        assert!(e.contains("\"ten\"") && e.ends_with("in `head`"), "{e}");
        let e = Dataset::parse("d", table("from = 1\nhead = 1")).unwrap_err();
        assert!(matches!(e.root(), Error::Invalid(_)), "{e}");
        assert!(e.to_string().contains("`from` must name a dataset"), "{e}");
    }
}

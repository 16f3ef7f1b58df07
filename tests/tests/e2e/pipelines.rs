//! Seeded, property-style differential test of random pipelines against DuckDB.
//!
//! Each case is a chain of 2 to 5 merges (every `how`, custom suffixes, different key names,
//! strategy hints) with filters, selects, assigns and group-bys (tree and shuffle, expressions
//! over aggregates) in between, over four small multi-file Parquet tables (some files empty)
//! that share column names on purpose, planned by one of three clients whose broadcast and tree
//! limits differ. The generator models every frame's columns itself (pandas `merge` naming) and
//! writes the equivalent DuckDB query as a chain of CTEs. A pipeline the model calls valid must
//! validate with the model's column names, run, and equal DuckDB (unordered); one it calls
//! invalid (unknown column, duplicate names after suffixing, a broadcast outer join) must be
//! refused before anything runs.
//!
//! The seed (fixed by default) is printed; `SHOAL_PIPELINE_SEED` and `SHOAL_PIPELINE_CASES`
//! override it and the case count.

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use shoal::JoinHint;
use shoal::{Agg, Merge};
use shoal::{Client, DataFrame, ExecutorKind};
use shoal_protocol::JoinHow;
use shoal_tests::data::{Rng, assert_same_rows};
use shoal_tests::read_parquet_dir;
use std::path::Path;
use std::sync::Arc;

const DEFAULT_CASES: usize = 240;
/// Fixed, so that CI runs the same cases every time (this seed's cases caught every bug of
/// issue 8 and two more); set `SHOAL_PIPELINE_SEED` to explore others.
const DEFAULT_SEED: u64 = 404;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ty {
    Int,
    Float,
    Str,
}

/// Name, unique column and rows per file (0: an empty file) of each table.
const TABLES: [(&str, &str, Ty, &[usize]); 4] = [
    ("a", "qty", Ty::Int, &[60, 0, 45, 35]),
    ("b", "tier", Ty::Str, &[20, 0, 25]),
    ("c", "score", Ty::Float, &[30, 25, 0, 20, 15]),
    ("d", "flag", Ty::Int, &[12, 0, 18]),
];
/// Columns of every table.
const SHARED: [(&str, Ty); 5] =
    [("k1", Ty::Int), ("k2", Ty::Str), ("year", Ty::Int), ("v", Ty::Float), ("name", Ty::Str)];
const KEYS: [&str; 3] = ["k1", "k2", "year"];
const HOWS: [JoinHow; 6] =
    [JoinHow::Inner, JoinHow::Left, JoinHow::Right, JoinHow::Outer, JoinHow::Semi, JoinHow::Anti];
/// Aggregations: label, SQL template (`#`: the column), result type (`None`: the column's).
/// The first five go through `Agg::new`, the others (expressions over aggregates) `Agg::sql`.
const AGGS: [(&str, &str, Option<Ty>); 9] = [
    ("sum", "sum(#)", None),
    ("mean", "avg(#)", Some(Ty::Float)),
    ("count", "count(#)", Some(Ty::Int)),
    ("min", "min(#)", None),
    ("max", "max(#)", None),
    ("share", "100 * sum(CASE WHEN # > 5 THEN # ELSE 0 END) / sum(#)", Some(Ty::Float)),
    ("spread", "max(#) - min(#)", None),
    ("ratio", "sum(#) / count(*)", Some(Ty::Float)),
    ("rows", "count(*) + count(#)", Some(Ty::Int)),
];
/// Strategies counted in the validated plans; all but the last two must occur.
const MARKERS: [&str; 7] = [
    "strategy=broadcast side=right",
    "strategy=broadcast side=left",
    "strategy=hash",
    "strategy=tree",
    "strategy=shuffle",
    "strategy=partition-wise",
    "whole-table reduction",
];

fn write_table(dir: &Path, t: usize, seed: u64) {
    let (name, extra, ty, files) = TABLES[t];
    let cols: Vec<(&str, Ty)> = SHARED.iter().copied().chain([(extra, ty)]).collect();
    let arrow_type = |ty: Ty| [DataType::Int64, DataType::Float64, DataType::Utf8][ty as usize].clone();
    let fields: Vec<Field> = cols.iter().map(|(n, ty)| Field::new(*n, arrow_type(*ty), true)).collect();
    let schema = Arc::new(Schema::new(fields));
    std::fs::create_dir_all(dir.join(name)).unwrap();
    let mut rng = Rng::new(seed ^ (0x51_7cc1 * (t as u64 + 1)));
    for (f, &rows) in files.iter().enumerate() {
        let arrays: Vec<ArrayRef> = cols.iter().map(|(n, ty)| column(&mut rng, n, *ty, rows)).collect();
        let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
        let file = std::fs::File::create(dir.join(name).join(format!("part-{f}.parquet"))).unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(16))
            .build();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
        if rows > 0 {
            w.write(&batch).unwrap();
        }
        w.close().unwrap();
    }
}

/// About 8% nulls; floats are positive with one decimal (thresholds have four: no ties).
fn column(rng: &mut Rng, name: &str, ty: Ty, rows: usize) -> ArrayRef {
    let (lo, n) = match name {
        "k1" => (0, 20),
        "year" => (2018, 7),
        _ => (0, 50),
    };
    let strings: &[&str] = match name {
        "k2" => &["a", "b", "c", "d", "e"],
        "name" => &["ann", "bob", "cy", "dee"],
        _ => &["gold", "silver", "none"],
    };
    let range = match ty {
        Ty::Int => n,
        Ty::Float => 96,
        Ty::Str => strings.len() as u64,
    };
    let values: Vec<Option<u64>> = (0..rows).map(|_| (!rng.chance(0.08)).then(|| rng.below(range))).collect();
    match ty {
        Ty::Int => Arc::new(values.iter().map(|v| v.map(|v| lo + v as i64)).collect::<Int64Array>()),
        Ty::Float => {
            Arc::new(values.iter().map(|v| v.map(|v| (5 + v) as f64 / 10.0)).collect::<Float64Array>())
        }
        Ty::Str => Arc::new(values.iter().map(|v| v.map(|v| strings[v as usize])).collect::<StringArray>()),
    }
}

/// A column of the model: `base` is the table column it derives from (its own name for new
/// ones); `right_copy` marks a column suffixed as the right side's copy.
#[derive(Debug, Clone)]
struct Col {
    name: String,
    ty: Ty,
    base: String,
    right_copy: bool,
}

impl Col {
    fn new(name: &str, ty: Ty) -> Col {
        Col { name: name.to_string(), ty, base: name.to_string(), right_copy: false }
    }
    fn key(&self) -> bool {
        KEYS.contains(&self.base.as_str())
    }
}

/// A built frame, its modelled columns, its CTE, and the keys and partition count of the
/// shuffled aggregation it still is (for partition-wise joins).
#[derive(Debug, Clone)]
struct Frame {
    df: DataFrame,
    cols: Vec<Col>,
    cte: String,
    shuffled: Option<(Vec<String>, usize)>,
}

impl Frame {
    fn col(&self, name: &str) -> Col {
        self.cols.iter().find(|c| c.name == name).cloned().unwrap()
    }
}

/// The model's verdict: valid; valid or refused (a partition-wise hint); refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Expect {
    Valid,
    Maybe,
    Refuse,
}

type Step = Result<Frame, String>;

fn q(name: &str) -> String {
    format!("\"{name}\"")
}

fn list(cols: &[Col]) -> String {
    cols.iter().map(|c| q(&c.name)).collect::<Vec<_>>().join(", ")
}

/// `template` with `#` replaced by the column: as shoal's expression, and quoted for DuckDB.
fn fill(template: &str, col: &str) -> (String, String) {
    (template.replace('#', col), template.replace('#', &q(col)))
}

fn pick<T: Clone>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.below(items.len() as u64) as usize].clone()
}

/// One generated pipeline: DuckDB CTEs, readable steps, the verdict, a schema mismatch.
struct Case<'a> {
    rng: Rng,
    tables: &'a [Vec<DataFrame>],
    client: usize,
    ctes: Vec<String>,
    steps: Vec<String>,
    expect: Expect,
    mismatch: Option<String>,
}

impl Case<'_> {
    fn push(
        &mut self,
        desc: String,
        sql: String,
        cols: Vec<Col>,
        df: shoal::Result<DataFrame>,
        expect: Expect,
    ) -> Step {
        let cte = format!("t{}", self.ctes.len());
        self.steps.push(format!("{cte} = {desc}"));
        self.ctes.push(format!("{cte} AS ({sql})"));
        self.expect = self.expect.max(expect);
        let df = df.map_err(|e| format!("{cte}: {e}"))?;
        let got: Vec<String> = df.schema().unwrap().fields().iter().map(|f| f.name().clone()).collect();
        let want: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
        if expect == Expect::Valid && got != want && self.mismatch.is_none() {
            self.mismatch = Some(format!("{cte}: shoal's columns {got:?}, the model's {want:?}"));
        }
        Ok(Frame { df, cols, cte, shuffled: None })
    }

    fn table(&mut self, t: usize) -> Frame {
        let (name, extra, ty, _) = TABLES[t];
        let cols = SHARED.iter().copied().chain([(extra, ty)]).map(|(n, ty)| Col::new(n, ty)).collect();
        Frame { df: self.tables[t][self.client].clone(), cols, cte: name.to_string(), shuffled: None }
    }

    fn build(&mut self) -> Step {
        let t = self.rng.below(4) as usize;
        let mut cur = self.table(t);
        if self.rng.chance(0.5) {
            cur = self.filter(&cur, None)?;
        }
        for _ in 0..2 + self.rng.below(4) {
            for _ in 0..self.rng.below(3) {
                cur = self.op(&cur)?;
            }
            cur = self.merge(&cur)?;
        }
        if self.rng.chance(0.5) {
            cur = self.op(&cur)?;
        }
        if self.rng.chance(0.1) {
            cur = self.groupby(&cur, vec![], None)?;
        }
        Ok(cur)
    }

    /// A random filter, select, assign or group-by; 1% name a column that does not exist.
    fn op(&mut self, f: &Frame) -> Step {
        match self.rng.below(200) {
            0 => self.filter(f, Some(("# > 1", "nope"))),
            1 => self.select_cols(f, f.cols.clone(), true),
            2..=61 => self.filter(f, None),
            62..=111 => self.select(f, &[]),
            112..=151 => self.assign(f),
            _ => {
                let keys = self.group_keys(f);
                let split_out = self.rng.chance(0.4).then(|| 2 + self.rng.below(2) as usize);
                self.groupby(f, keys, split_out)
            }
        }
    }

    /// A random predicate on a random column, or `given` (template, column).
    fn filter(&mut self, f: &Frame, given: Option<(&str, &str)>) -> Step {
        let c = pick(&mut self.rng, &f.cols);
        let x = pick(&mut self.rng, &["3.5137", "7.5137", "20.5137", "60.5137"]);
        let random = match c.ty {
            Ty::Int if c.base == "year" => format!("# >= {}", 2019 + self.rng.below(4)),
            Ty::Int => pick(&mut self.rng, &["# IS NOT NULL AND # < 12", "# % 3 <> 1", "# >= 4"]).into(),
            Ty::Float => pick(&mut self.rng, &["# > X", "# IS NULL OR # < X"]).replace('X', x),
            Ty::Str => pick(
                &mut self.rng,
                &["# <> 'b'", "# IN ('a', 'c', 'bob', 'gold')", "# IS NOT NULL", "# >= 'b'"],
            )
            .into(),
        };
        let (template, col) = given.unwrap_or((random.as_str(), c.name.as_str()));
        let (p, sql) = fill(template, col);
        let expect = if f.cols.iter().any(|c| c.name == col) { Expect::Valid } else { Expect::Refuse };
        let sql = format!("SELECT {} FROM {} WHERE {sql}", list(&f.cols), f.cte);
        let df = f.df.filter(p.as_str());
        let out = self.push(format!("filter({}, {p:?})", f.cte), sql, f.cols.clone(), df, expect)?;
        Ok(Frame { shuffled: f.shuffled.clone(), ..out })
    }

    /// A random subset keeping `keep` and a key; sometimes keys only as their right copies.
    fn select(&mut self, f: &Frame, keep: &[String]) -> Step {
        let right: Vec<String> =
            f.cols.iter().filter(|c| c.key() && c.right_copy).map(|c| c.base.clone()).collect();
        let only_right = !right.is_empty() && self.rng.chance(0.5);
        let rng = &mut self.rng;
        let mut cols: Vec<Col> = (f.cols.iter())
            .filter(|c| {
                if keep.contains(&c.name) || (only_right && c.key() && c.right_copy) {
                    true
                } else {
                    !(only_right && right.contains(&c.base)) && rng.chance(if c.key() { 0.7 } else { 0.6 })
                }
            })
            .cloned()
            .collect();
        if !cols.iter().any(Col::key) {
            cols.insert(0, f.cols.iter().find(|c| c.key()).cloned().unwrap());
        }
        if self.rng.chance(0.3) {
            cols.reverse();
        }
        self.select_cols(f, cols, false)
    }

    fn select_cols(&mut self, f: &Frame, cols: Vec<Col>, invalid: bool) -> Step {
        let mut names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
        if invalid {
            names.push("nope".into());
        }
        let expect = if invalid { Expect::Refuse } else { Expect::Valid };
        let sql = format!("SELECT {} FROM {}", list(&cols), f.cte);
        self.push(format!("select({}, {names:?})", f.cte), sql, cols, f.df.select(&names), expect)
    }

    /// A new column, or a non-key one overwritten in place (floats stay positive).
    fn assign(&mut self, f: &Frame) -> Step {
        let c = pick(&mut self.rng, &f.cols);
        let template = match c.ty {
            Ty::Int => pick(&mut self.rng, &["# % 5", "# + 1"]),
            Ty::Float => pick(&mut self.rng, &["# * 2 + 1", "# / 2 + 0.25"]),
            Ty::Str => pick(&mut self.rng, &["upper(#)", "# || '_z'"]),
        };
        let new = match !c.key() && self.rng.chance(0.3) {
            true => c.clone(),
            false => Col::new(&format!("a{}", self.ctes.len()), c.ty),
        };
        self.assign_col(f, &c, new, template)
    }

    fn assign_col(&mut self, f: &Frame, src: &Col, new: Col, template: &str) -> Step {
        let (e, sql) = fill(template, &src.name);
        let (mut cols, mut exprs) = (f.cols.clone(), f.cols.iter().map(|c| q(&c.name)).collect::<Vec<_>>());
        let sql = format!("{sql} AS {}", q(&new.name));
        match cols.iter().position(|c| c.name == new.name) {
            Some(i) => (cols[i], exprs[i]) = (new.clone(), sql),
            None => {
                cols.push(new.clone());
                exprs.push(sql);
            }
        }
        let df = f.df.assign(&new.name, e.as_str());
        let sql = format!("SELECT {} FROM {}", exprs.join(", "), f.cte);
        self.push(format!("assign({}, {} = {e:?})", f.cte, new.name), sql, cols, df, Expect::Valid)
    }

    /// One or two key columns of distinct bases, preferring suffixed right copies.
    fn group_keys(&mut self, f: &Frame) -> Vec<Col> {
        let keys: Vec<Col> = f.cols.iter().filter(|c| c.key()).cloned().collect();
        let right: Vec<Col> = keys.iter().filter(|c| c.right_copy).cloned().collect();
        let prefer_right = !right.is_empty() && self.rng.chance(0.6);
        let first = pick(&mut self.rng, if prefer_right { &right } else { &keys });
        let second = pick(&mut self.rng, &keys);
        if self.rng.chance(0.4) && second.base != first.base { vec![first, second] } else { vec![first] }
    }

    /// `groupby(keys).agg(..)` (a whole-table `agg` without keys) of 1 to 3 aggregations of
    /// non-key columns, about half of them expressions over aggregates.
    fn groupby(&mut self, f: &Frame, keys: Vec<Col>, split_out: Option<usize>) -> Step {
        let values: Vec<Col> = f.cols.iter().filter(|c| !c.key()).cloned().collect();
        let (mut aggs, mut select, mut cols) =
            (vec![], keys.iter().map(|k| q(&k.name)).collect::<Vec<_>>(), keys.clone());
        for _ in 0..if values.is_empty() { 0 } else { 1 + self.rng.below(3) } {
            let c = pick(&mut self.rng, &values);
            let positive = c.ty == Ty::Float && (c.base == "v" || c.base == "score");
            let fits = |label: &str| match label {
                "share" => positive,
                "sum" | "mean" | "spread" => c.ty != Ty::Str,
                "ratio" => c.ty == Ty::Float,
                _ => true,
            };
            let range = if self.rng.chance(0.5) { 5..9 } else { 0..5 };
            let options: Vec<_> = AGGS[range].iter().filter(|a| fits(a.0)).collect();
            let (label, template, ty) = *pick(&mut self.rng, &options);
            let name = format!("{}_{label}", c.name);
            if cols.iter().any(|k| k.name == name) {
                continue;
            }
            let (expr, sql) = fill(template, &c.name);
            let plain = AGGS[..5].iter().any(|a| a.0 == label);
            aggs.push(if plain { Agg::new(&name, &c.name, label).unwrap() } else { Agg::sql(&name, &expr) });
            select.push(format!("{sql} AS {}", q(&name)));
            cols.push(Col::new(&name, ty.unwrap_or(c.ty)));
        }
        if aggs.is_empty() {
            aggs.push(Agg::sql("n", "count(*)"));
            select.push("count(*) AS \"n\"".into());
            cols.push(Col::new("n", Ty::Int));
        }
        let names: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
        let df = match (keys.is_empty(), split_out) {
            (true, _) => f.df.agg(&aggs),
            (false, Some(n)) => f.df.groupby(&names).split_out(n).agg(&aggs),
            (false, None) => f.df.groupby(&names).agg(&aggs),
        };
        let group = if keys.is_empty() { String::new() } else { format!(" GROUP BY {}", list(&keys)) };
        let sql = format!("SELECT {} FROM {}{group}", select.join(", "), f.cte);
        let desc: Vec<String> = aggs.iter().map(|a| format!("{} = {}", a.name, a.sql)).collect();
        let desc = format!("groupby({}, {names:?}, split_out={split_out:?}).agg({desc:?})", f.cte);
        let out = self.push(desc, sql, cols, df, Expect::Valid)?;
        Ok(Frame { shuffled: split_out.filter(|_| !names.is_empty()).map(|n| (names, n)), ..out })
    }

    /// A right-hand side for `left` and the keys of both: a table, or a filter, select, assign
    /// (renaming a key) or aggregation of one; an aggregation aligned with `left` if shuffled.
    fn rhs(&mut self, left: &Frame) -> Result<(Frame, Vec<String>, Vec<String>), String> {
        let t = self.rng.below(4) as usize;
        let table = self.table(t);
        if let Some((keys, n)) = left.shuffled.clone().filter(|_| self.rng.chance(0.8)) {
            let right_keys: Vec<Col> = keys.iter().map(|k| table.col(&left.col(k).base)).collect();
            let ro = right_keys.iter().map(|c| c.name.clone()).collect();
            return Ok((self.groupby(&table, right_keys, Some(n))?, keys, ro));
        }
        let mut bases: Vec<&str> =
            KEYS.into_iter().filter(|b| left.cols.iter().any(|c| c.base == *b)).collect();
        let mut lk: Vec<Col> = Vec::new();
        while lk.len() < if self.rng.chance(0.35) { 2 } else { 1 } && !bases.is_empty() {
            let mut i = self.rng.below(bases.len() as u64) as usize;
            if bases[i] == "year" && self.rng.chance(0.7) {
                i = self.rng.below(bases.len() as u64) as usize;
            }
            let base = bases.remove(i);
            lk.push(pick(
                &mut self.rng,
                &left.cols.iter().filter(|c| c.base == base).cloned().collect::<Vec<_>>(),
            ));
        }
        let mut ro: Vec<String> = lk.iter().map(|c| c.base.clone()).collect();
        let right = match self.rng.below(10) {
            0..=2 => table,
            3 | 4 => self.filter(&table, None)?,
            5 => {
                let assigned = self.assign(&table)?;
                self.select(&assigned, &ro)?
            }
            6 => {
                let src = table.col(&ro[0]);
                let renamed =
                    self.assign_col(&table, &src, Col { name: format!("r{}", ro[0]), ..src.clone() }, "#")?;
                let cols = renamed.cols.iter().filter(|c| c.name != ro[0]).cloned().collect();
                ro[0] = format!("r{}", ro[0]);
                self.select_cols(&renamed, cols, false)?
            }
            _ => {
                let keys = ro.iter().map(|k| table.col(k)).collect();
                let split_out = self.rng.chance(0.4).then(|| 2 + self.rng.below(2) as usize);
                self.groupby(&table, keys, split_out)?
            }
        };
        Ok((right, lk.into_iter().map(|c| c.name).collect(), ro))
    }

    fn merge(&mut self, l: &Frame) -> Step {
        let (r, lo, ro) = self.rhs(l)?;
        let how = pick(&mut self.rng, &HOWS);
        let mut suffixes = if self.rng.chance(0.25) { ("_l", "_r") } else { ("_x", "_y") };
        // Mostly avoid (but sometimes keep) suffixes that would give duplicate names.
        let mut cols = merge_columns(l, &r, how, &lo, &ro, suffixes);
        if has_duplicates(&cols) && self.rng.chance(0.8) {
            suffixes = if suffixes.0 == "_x" { ("_l", "_r") } else { ("_x", "_y") };
            cols = merge_columns(l, &r, how, &lo, &ro, suffixes);
        }
        let both_shuffled = l.shuffled.is_some() && r.shuffled.is_some();
        let hint = match self.rng.below(100) {
            _ if both_shuffled && self.rng.chance(0.5) => Some(JoinHint::PartitionWise),
            0 => Some(JoinHint::PartitionWise),
            1..=21 if how != JoinHow::Outer || self.rng.chance(0.1) => Some(JoinHint::Broadcast),
            22..=41 => Some(JoinHint::Hash),
            _ => None,
        };
        let mut m = if lo == ro { Merge::on(&lo) } else { Merge::left_right(&lo, &ro) };
        m = m.how(how).suffixes(suffixes.0, suffixes.1);
        if let Some(h) = hint {
            m = m.strategy(h);
        }
        if hint == Some(JoinHint::Hash) && self.rng.chance(0.4) {
            m = m.npartitions(2 + self.rng.below(3) as usize);
        }
        let expect = match hint {
            _ if has_duplicates(&cols) => Expect::Refuse,
            Some(JoinHint::Broadcast) if how == JoinHow::Outer => Expect::Refuse,
            Some(JoinHint::PartitionWise) => Expect::Maybe,
            _ => Expect::Valid,
        };
        let on: Vec<String> = lo.iter().zip(&ro).map(|(a, b)| format!("l.{} = r.{}", q(a), q(b))).collect();
        let (on, lc, rc) = (on.join(" AND "), &l.cte, &r.cte);
        let select: Vec<String> = cols.iter().map(|(c, e)| format!("{e} AS {}", q(&c.name))).collect();
        let select = select.join(", ");
        let sql = match how {
            JoinHow::Semi => {
                format!("SELECT {select} FROM {lc} l WHERE EXISTS (SELECT 1 FROM {rc} r WHERE {on})")
            }
            JoinHow::Anti => {
                format!("SELECT {select} FROM {lc} l WHERE NOT EXISTS (SELECT 1 FROM {rc} r WHERE {on})")
            }
            JoinHow::Left => format!("SELECT {select} FROM {lc} l LEFT JOIN {rc} r ON {on}"),
            JoinHow::Right => format!("SELECT {select} FROM {lc} l RIGHT JOIN {rc} r ON {on}"),
            JoinHow::Outer => format!("SELECT {select} FROM {lc} l FULL OUTER JOIN {rc} r ON {on}"),
            JoinHow::Inner => format!("SELECT {select} FROM {lc} l JOIN {rc} r ON {on}"),
        };
        let how_name = how.as_str();
        let desc = format!(
            "merge({lc}, {rc}, how={how_name}, left_on={lo:?}, right_on={ro:?}, suffixes={suffixes:?}, hint={hint:?})"
        );
        self.push(desc, sql, cols.into_iter().map(|(c, _)| c).collect(), l.df.merge(&r.df, &m), expect)
    }
}

/// pandas `merge` naming: a key of the same name on both sides appears once (the right's value
/// for `right`, the non-null one for `outer`); other names on both sides take the suffixes;
/// semi and anti joins keep the left columns. Each column with its DuckDB expression.
fn merge_columns(
    l: &Frame,
    r: &Frame,
    how: JoinHow,
    lo: &[String],
    ro: &[String],
    sfx: (&str, &str),
) -> Vec<(Col, String)> {
    let shared: Vec<&String> = lo.iter().zip(ro).filter(|(a, b)| a == b).map(|(a, _)| a).collect();
    let left_only = matches!(how, JoinHow::Semi | JoinHow::Anti);
    let has = |f: &Frame, n: &str| f.cols.iter().any(|c| c.name == n);
    let mut out = Vec::new();
    for c in &l.cols {
        let (mut col, n) = (c.clone(), q(&c.name));
        let e = match how {
            _ if left_only || !shared.contains(&&c.name) => {
                if !left_only && has(r, &c.name) {
                    (col.name, col.right_copy) = (format!("{}{}", c.name, sfx.0), false);
                }
                format!("l.{n}")
            }
            JoinHow::Right => format!("r.{n}"),
            JoinHow::Outer => format!("coalesce(l.{n}, r.{n})"),
            _ => format!("l.{n}"),
        };
        out.push((col, e));
    }
    for c in r.cols.iter().filter(|c| !left_only && !shared.contains(&&c.name)) {
        let mut col = c.clone();
        if has(l, &c.name) {
            (col.name, col.right_copy) = (format!("{}{}", c.name, sfx.1), true);
        }
        out.push((col, format!("r.{}", q(&c.name))));
    }
    out
}

fn has_duplicates(cols: &[(Col, String)]) -> bool {
    let mut seen = std::collections::HashSet::new();
    !cols.iter().all(|(c, _)| seen.insert(c.name.clone()))
}

const DUCKDB_BATCH: &str = r#"
import json, sys
import duckdb
con = duckdb.connect()
for sql, out in json.load(open(sys.argv[1])):
    try:
        con.execute("COPY (" + sql + ") TO '" + out.replace("'", "''") + "' (FORMAT parquet)")
    except Exception as e:
        open(out + ".err", "w").write(str(e))
"#;

/// Runs every `(sql, out)` in one Python process; a failed query leaves `<out>.err`.
fn duckdb_batch(dir: &Path, queries: &[(String, String)]) {
    let list = dir.join("queries.json");
    std::fs::write(&list, serde_json::to_vec(queries).unwrap()).unwrap();
    let python = shoal_tests::python::test_python().unwrap();
    let output = std::process::Command::new(python).args(["-c", DUCKDB_BATCH]).arg(&list).output().unwrap();
    assert!(output.status.success(), "DuckDB batch failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// The tables as DataFrames of each of three clients: one hashes every unhinted join, one
/// broadcasts whatever it may (both sides), one has a mid limit and shuffles aggregations of
/// more than 8 groups (from statistics).
async fn setup(dir: &Path, seed: u64) -> (Vec<Client>, Vec<Vec<DataFrame>>) {
    (0..TABLES.len()).for_each(|t| write_table(dir, t, seed));
    let mut clients = Vec::new();
    for (i, (broadcast_bytes, tree_max_groups)) in
        [(0, 1_000_000), (1 << 30, 1_000_000), (4096, 8)].into_iter().enumerate()
    {
        let mut config = crate::config(&dir.join(format!("root-{i}")), ExecutorKind::Threads);
        (config.plan.broadcast_bytes, config.plan.tree_max_groups) = (broadcast_bytes, tree_max_groups);
        clients.push(Client::new(config).unwrap());
    }
    let mut tables = Vec::new();
    for (name, ..) in TABLES {
        let mut per_client = Vec::new();
        for c in &clients {
            per_client.push(c.read_parquet(&format!("{}/{name}/*.parquet", dir.display())).await.unwrap());
        }
        tables.push(per_client);
    }
    (clients, tables)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// A pipeline that validated: its description (with the SQL), plan and DuckDB output path.
struct Ready {
    header: String,
    df: DataFrame,
    plan: String,
    out: String,
}

/// Generates case `i` and judges its validation. `Ok(Err(why))`: refused, as the model allows.
fn plan_case(
    seed: u64,
    i: usize,
    tables: &[Vec<DataFrame>],
    dir: &Path,
) -> Result<Result<(Ready, String), String>, String> {
    let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(i as u64));
    let client = rng.below(tables[0].len() as u64) as usize;
    let mut case =
        Case { rng, tables, client, ctes: vec![], steps: vec![], expect: Expect::Valid, mismatch: None };
    let planned =
        case.build().and_then(|f| f.df.explain().map(|p| (f, p)).map_err(|e| format!("explain: {e}")));
    let header = format!("seed {seed} case {i} (client {client}):\n  {}", case.steps.join("\n  "));
    let (frame, plan) = match (planned, case.expect) {
        (Err(e), Expect::Valid) if e.starts_with("explain") => {
            return Err(format!("{header}\nOPTIMIZER broke a pipeline that validated: {e}"));
        }
        (Err(e), Expect::Valid) => {
            return Err(format!("{header}\nREFUSED a pipeline the model calls valid: {e}"));
        }
        (Err(e), Expect::Maybe) if !e.contains("partition-wise") => {
            return Err(format!("{header}\nREFUSED, and not for its partition-wise hint: {e}"));
        }
        (Err(e), _) => return Ok(Err(e)),
        (Ok((_, plan)), Expect::Refuse) => {
            return Err(format!("{header}\nACCEPTED a pipeline the model calls invalid\n{plan}"));
        }
        (Ok(ok), _) => ok,
    };
    if let Some(m) = case.mismatch {
        return Err(format!("{header}\nCOLUMNS differ from pandas merge naming: {m}\n{plan}"));
    }
    let prefix: Vec<String> = TABLES
        .iter()
        .map(|(t, ..)| format!("{t} AS (SELECT * FROM read_parquet('{}/{t}/*.parquet'))", dir.display()))
        .collect();
    let sql = format!("WITH {}, {} SELECT * FROM {}", prefix.join(", "), case.ctes.join(", "), frame.cte);
    let out = dir.join(format!("duckdb-{i}.parquet")).display().to_string();
    Ok(Ok((Ready { header: format!("{header}\nsql: {sql}"), df: frame.df, plan, out }, sql)))
}

/// Runs a validated pipeline and compares it with DuckDB's answer; the failure, if any.
async fn check(r: &Ready) -> Option<String> {
    if let Ok(e) = std::fs::read_to_string(format!("{}.err", r.out)) {
        return Some(format!("DuckDB failed (a generator bug): {e}"));
    }
    match r.df.compute().await {
        Err(e) => Some(format!("RUN FAILED: {e}")),
        Ok(actual) => {
            let expected = read_parquet_dir(&r.out).unwrap();
            assert_same_rows(&actual, &expected).err().map(|e| format!("DIFFERS from DuckDB: {e:#}"))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_pipelines_match_duckdb() {
    let started = std::time::Instant::now();
    let seed: u64 = env_or("SHOAL_PIPELINE_SEED", DEFAULT_SEED);
    let cases: usize = env_or("SHOAL_PIPELINE_CASES", DEFAULT_CASES);
    eprintln!(
        "pipelines: seed {seed}, {cases} cases (SHOAL_PIPELINE_SEED={seed} SHOAL_PIPELINE_CASES={cases} repeats them)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let (_clients, tables) = setup(tmp.path(), seed).await;
    let (mut ready, mut queries, mut failures, mut refused) = (vec![], vec![], vec![], 0);
    for i in 0..cases {
        match plan_case(seed, i, &tables, tmp.path()) {
            Ok(Ok((r, sql))) => {
                queries.push((sql, r.out.clone()));
                ready.push(r);
            }
            Ok(Err(why)) => {
                eprintln!("pipelines: case {i} refused, as the model allows: {why}");
                refused += 1;
            }
            Err(e) => failures.push(e),
        }
    }
    duckdb_batch(tmp.path(), &queries);
    let mut seen = [0usize; MARKERS.len()];
    for r in &ready {
        for (count, marker) in seen.iter_mut().zip(MARKERS) {
            *count += r.plan.matches(marker).count();
        }
        if let Some(e) = check(r).await {
            failures.push(format!("{}\n{e}\n{}", r.header, r.plan));
        }
    }
    let counts: Vec<String> = MARKERS.iter().zip(seen).map(|(m, n)| format!("{m}: {n}")).collect();
    let (validated, failed) = (ready.len(), failures.len());
    eprintln!(
        "pipelines: seed {seed}: {cases} cases, {validated} validated, {refused} refused, {failed} failed, in {:.1?}\n  {}",
        started.elapsed(),
        counts.join("\n  ")
    );
    // Every failure in one line (in the log), the first few in full (in the panic).
    for f in &failures {
        let what = f.lines().find(|l| l.starts_with(char::is_uppercase)).unwrap_or_default();
        eprintln!("pipelines: FAILED {} {what}", f.lines().next().unwrap_or_default());
    }
    let shown: Vec<&str> = failures.iter().take(4).map(String::as_str).collect();
    assert!(
        failures.is_empty(),
        "{failed} of {cases} cases failed (seed {seed}); the first ones:\n\n{}",
        shown.join("\n\n")
    );
    assert!(validated * 10 >= cases * 7, "only {validated} of {cases} cases validated (seed {seed})");
    for (marker, n) in MARKERS.iter().zip(seen).take(5) {
        assert!(n > 0, "no validated case planned '{marker}' (seed {seed})");
    }
}

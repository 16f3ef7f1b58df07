//! Text inputs as people have them, each checked against DuckDB reading the same files: CSV
//! dialects (skipped lines, comments, another quote and escape character, a delimiter, Latin-1,
//! `usecols`, `parse_dates`); large files read in blocks cut at record ends, quoted line breaks
//! included; `.gz`, `.zst` and `.bz2` files read whole; a value that does not parse named by
//! file, line and column; JSON lines and JSON arrays with nested objects; Parquet files whose
//! schemas evolved, read as their union.

use crate::cli::shoal;
use arrow::record_batch::RecordBatch;
use shoal_tests::python::duckdb_query;
use shoal_tests::read_parquet_dir;
use std::path::Path;

/// Runs a job whose datasets are `datasets` and whose one output is `dataset` as Parquet, and
/// returns the rows written.
fn run(dir: &Path, datasets: &str, dataset: &str) -> Vec<RecordBatch> {
    let out_dir = dir.join(format!("out-{dataset}"));
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::write(
        dir.join("job.toml"),
        format!("{datasets}\n[[outputs]]\ndataset = \"{dataset}\"\nto_parquet = \"out-{dataset}\"\n"),
    )
    .unwrap();
    let out = shoal(&["run", "job.toml", "--root", "root", "--executor", "threads"], dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    read_parquet_dir(out_dir).unwrap()
}

/// The job's error, which must fail.
fn fails(dir: &Path, datasets: &str) -> String {
    std::fs::write(
        dir.join("bad.toml"),
        format!("{datasets}\n[[outputs]]\ndataset = \"raw\"\nto_parquet = \"bad\"\n"),
    )
    .unwrap();
    let out = shoal(&["run", "bad.toml", "--root", "root-bad", "--executor", "sync"], dir);
    assert!(!out.status.success(), "must fail");
    assert!(!dir.join("bad/_SUCCESS").exists(), "nothing written");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn duck(dir: &Path, sql: &str) -> Vec<RecordBatch> {
    let path = dir.join("ref.parquet");
    let _ = std::fs::remove_file(&path);
    duckdb_query(sql, &path).unwrap();
    read_parquet_dir(&path).unwrap()
}

/// Runs `script` with the tests' Python (DuckDB and pandas installed), which writes files.
fn python(script: &str) {
    let py = shoal_tests::python::test_python().unwrap();
    let out = std::process::Command::new(py).args(["-c", script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn explain(dir: &Path) -> String {
    let out = shoal(&["explain", "job.toml"], dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn csv_dialects_read_as_duckdb_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("in")).unwrap();
    // Two lines of preamble, comment lines, `;` between fields, `'` quotes with `\` escapes, a
    // quoted line break, dates, and names in Latin-1.
    let names = ["Zoë", "Ångström", "O'Brien", "Müller; Sohn", "plain"];
    let mut text = String::from("exported by a tool\nversion 2\nid;name;when;amount;note\n");
    for i in 0..60 {
        if i % 13 == 0 {
            text.push_str("# a comment line; 'with a quote\n");
        }
        let name = names[i % names.len()].replace('\'', "\\'");
        let note = if i % 9 == 0 { "'two\nlines'".to_string() } else { format!("n{i}") };
        text.push_str(&format!(
            "{i};'{name}';2024-0{}-1{} 0{}:30:00;{}.25;{note}\n",
            i % 9 + 1,
            i % 10,
            i % 10,
            i * 3
        ));
    }
    let latin1: Vec<u8> = text.chars().map(|c| u8::try_from(u32::from(c)).unwrap()).collect();
    std::fs::write(dir.join("in/export.csv"), latin1).unwrap();
    let got = run(
        dir,
        "[datasets.raw]\nread_csv = \"in/*.csv\"\nskiprows = 2\ncomment = \"#\"\ndelimiter = \";\"\n\
         quotechar = \"'\"\nescapechar = \"\\\\\"\nencoding = \"latin-1\"\nparse_dates = [\"when\"]\n\
         usecols = [\"id\", \"name\", \"when\", \"note\"]\n",
        "raw",
    );
    let expected = duck(
        dir,
        &format!(
            "SELECT id, name, \"when\", note FROM read_csv('{}/in/export.csv', skip = 2, comment = '#', delim = ';', \
             quote = '''', escape = '\\', encoding = 'latin-1', header = true, \
             types = {{'when': 'TIMESTAMP', 'note': 'VARCHAR'}})",
            dir.display()
        ),
    );
    assert_eq!(expected.iter().map(|b| b.num_rows()).sum::<usize>(), 60);
    shoal_tests::data::assert_same_table(&got, &expected, "id").unwrap();

    // The same file read as UTF-8 is an error that names the line and suggests the encoding.
    let err = fails(dir, "[datasets.raw]\nread_csv = \"in/*.csv\"\nskiprows = 2\ndelimiter = \";\"\n");
    assert!(err.contains("export.csv") && err.contains("not UTF-8") && err.contains("latin-1"), "{err}");
    // usecols naming a column that is not there.
    let err = fails(
        dir,
        "[datasets.raw]\nread_csv = \"in/*.csv\"\nskiprows = 2\ncomment = \"#\"\ndelimiter = \";\"\nquotechar = \"'\"\n\
         escapechar = \"\\\\\"\nencoding = \"latin1\"\nusecols = [\"id\", \"nme\"]\n",
    );
    assert!(err.contains("usecols: no column 'nme'") && err.contains("id, name, when"), "{err}");
}

/// `rows` rows of id, a quoted text with commas and doubled quotes, a number; `breaks`: every
/// 50th text holds a line break.
fn big_csv(rows: usize, breaks: bool) -> String {
    let mut text = String::from("id,text,x\n");
    for i in 0..rows {
        let body = if breaks && i % 50 == 7 {
            format!("line {i}\nand \"\"more\"\", too")
        } else {
            format!("t{i}, \"\"q\"\"")
        };
        text.push_str(&format!("{i},\"{body}\",{}\n", (i * 7919) % 1000));
    }
    text
}

#[test]
fn large_csv_files_are_read_in_blocks_cut_at_record_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("in")).unwrap();
    std::fs::create_dir_all(dir.join("zipped")).unwrap();
    std::fs::create_dir_all(dir.join("quoted")).unwrap();
    let plain = big_csv(60_000, false);
    assert!(plain.len() > 1_500_000);
    std::fs::write(dir.join("in/big.csv"), &plain).unwrap();
    let datasets = "[datasets.raw]\nread_csv = \"in/*.csv\"\nblocksize = \"256KB\"\n";
    let got = run(dir, datasets, "raw");
    let plan = explain(dir);
    let blocks: usize = plan
        .split("blocks=")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(blocks >= 5, "split into blocks: {plan}");
    let expected =
        duck(dir, &format!("SELECT * FROM read_csv('{}/in/big.csv', header = true)", dir.display()));
    shoal_tests::data::assert_same_table(&got, &expected, "id").unwrap();

    // Compressed copies are read whole, one partition each, to the same rows.
    let script = format!(
        "import gzip, bz2, duckdb\nsrc = open('{0}/in/big.csv', 'rb').read()\n\
         open('{0}/zipped/a.csv.gz', 'wb').write(gzip.compress(src))\n\
         open('{0}/zipped/b.csv.bz2', 'wb').write(bz2.compress(src))\n\
         duckdb.sql(\"COPY (SELECT * FROM read_csv('{0}/in/big.csv', header = true)) TO '{0}/zipped/c.csv.zst' (FORMAT csv, COMPRESSION zstd)\")\n",
        dir.display()
    );
    python(&script);
    let got = run(dir, "[datasets.raw]\nread_csv = \"zipped/*\"\nblocksize = \"256KB\"\n", "raw");
    assert!(explain(dir).contains("[3 files, 3 partitions"), "{}", explain(dir));
    // (DuckDB reads .gz and .zst but not .bz2: each copy holds the plain file's rows.)
    let one = format!("SELECT * FROM read_csv('{}/in/big.csv', header = true)", dir.display());
    let expected = duck(dir, &format!("{one} UNION ALL {one} UNION ALL {one}"));
    assert_eq!(got.iter().map(|b| b.num_rows()).sum::<usize>(), 3 * 60_000);
    shoal_tests::data::assert_same_rows(&got, &expected).unwrap();

    // Quoted line breaks in the sample: the file is read whole, and right.
    std::fs::write(dir.join("quoted/q.csv"), big_csv(30_000, true)).unwrap();
    let got = run(dir, "[datasets.raw]\nread_csv = \"quoted/*.csv\"\nblocksize = \"256KB\"\n", "raw");
    assert!(!explain(dir).contains("blocks="), "{}", explain(dir));
    let expected =
        duck(dir, &format!("SELECT * FROM read_csv('{}/quoted/q.csv', header = true)", dir.display()));
    shoal_tests::data::assert_same_table(&got, &expected, "id").unwrap();

    // A quoted line break only past the sample, across a block boundary: a clear error, never
    // a silently misread file.
    let mut late = big_csv(50_000, false);
    late.push_str("50000,\"");
    for i in 0..30_000 {
        late.push_str(&format!("inside {i}\n"));
    }
    late.push_str("\",1\n50001,\"x\",2\n");
    std::fs::write(dir.join("quoted/q.csv"), late).unwrap();
    let err = fails(dir, "[datasets.raw]\nread_csv = \"quoted/*.csv\"\nblocksize = \"256KB\"\n");
    assert!(err.contains("q.csv") && err.contains("line break") && err.contains("blocksize = 0"), "{err}");
}

#[test]
fn a_value_that_does_not_parse_names_the_file_line_column_and_value() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("in")).unwrap();
    // Four files: inference samples the first, middle and last; the second one has text in x.
    for f in 0..4 {
        let mut text = String::from("id,x\n");
        for i in 0..20 {
            let x = if f == 1 && i == 11 { "twelve".to_string() } else { format!("{i}") };
            text.push_str(&format!("{},{x}\n", f * 100 + i));
        }
        std::fs::write(dir.join(format!("in/part-{f}.csv")), text).unwrap();
    }
    let err = fails(dir, "[datasets.raw]\nread_csv = \"in/*.csv\"\n");
    assert!(err.contains("part-1.csv: line 13, column 'x': cannot read 'twelve' as Int64"), "{err}");
    assert!(err.contains("dtype = { x = \"string\" }"), "{err}");
    assert!(!err.contains("retry"), "Fatal, not retried: {err}");
    // And the way out it names works.
    let got = run(dir, "[datasets.raw]\nread_csv = \"in/*.csv\"\ndtype = { x = \"string\" }\n", "raw");
    assert_eq!(got.iter().map(|b| b.num_rows()).sum::<usize>(), 80);
}

#[test]
fn json_lines_and_arrays_read_as_duckdb_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("lines")).unwrap();
    std::fs::create_dir_all(dir.join("arrays")).unwrap();
    let mut all = Vec::new();
    for f in 0..3 {
        let mut text = String::new();
        for i in 0..4000 {
            let id = f * 10_000 + i;
            // Nested objects, missing keys, nulls, unicode; a float only in the last file.
            let score = if f == 2 && i % 5 == 0 { format!("{id}.5") } else { format!("{}", id % 97) };
            let person = if i % 11 == 0 {
                "null".to_string()
            } else {
                format!("{{\"name\": \"ü{}\", \"age\": {}}}", i % 7, i % 90)
            };
            let tag = if i % 3 == 0 { String::new() } else { format!(", \"tag\": \"t{}\"", i % 4) };
            let line = format!("{{\"id\": {id}, \"score\": {score}, \"person\": {person}{tag}}}");
            text.push_str(&line);
            text.push('\n');
            all.push(line);
        }
        std::fs::write(dir.join(format!("lines/part-{f}.jsonl")), &text).unwrap();
    }
    std::fs::write(dir.join("arrays/all.json"), format!("[{}]", all.join(",\n"))).unwrap();
    let sql = |glob: &str, format: &str| {
        format!(
            "SELECT id, score, person.name AS name, person.age AS age, tag FROM read_json('{}/{glob}', format = '{format}', \
             columns = {{id: 'BIGINT', score: 'DOUBLE', person: 'STRUCT(name VARCHAR, age BIGINT)', tag: 'VARCHAR'}})",
            dir.display()
        )
    };
    let flatten = "[datasets.flat]\nfrom = \"raw\"\nassign = { name = \"get_field(person, 'name')\", age = \"get_field(person, 'age')\" }\n\
                   [datasets.picked]\nfrom = \"flat\"\nselect = [\"id\", \"score\", \"name\", \"age\", \"tag\"]\n";
    let got = run(
        dir,
        &format!("[datasets.raw]\nread_json = \"lines/*.jsonl\"\nblocksize = \"40KB\"\n{flatten}"),
        "picked",
    );
    assert!(explain(dir).contains("blocks="), "{}", explain(dir));
    let expected = duck(dir, &sql("lines/*.jsonl", "newline_delimited"));
    shoal_tests::data::assert_same_table(&got, &expected, "id").unwrap();
    let got = run(
        dir,
        &format!("[datasets.raw]\nread_json = \"arrays/all.json\"\nlines = false\n{flatten}"),
        "picked",
    );
    let expected = duck(dir, &sql("arrays/all.json", "array"));
    shoal_tests::data::assert_same_table(&got, &expected, "id").unwrap();

    // A line that is not JSON is named by file and line.
    std::fs::write(dir.join("lines/part-1.jsonl"), "{\"id\": 1, \"score\": 2}\n{\"id\": 2, \"score\": \n")
        .unwrap();
    let err = fails(dir, "[datasets.raw]\nread_json = \"lines/*.jsonl\"\n");
    assert!(err.contains("part-1.jsonl") && err.contains("line 2: not valid JSON"), "{err}");
}

#[test]
fn parquet_files_of_evolved_schemas_read_as_their_union() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("in")).unwrap();
    // Version 1: id INT, x FLOAT; version 2 widened both; version 3 added a column.
    let script = format!(
        "import duckdb\n\
         duckdb.sql(\"COPY (SELECT i::INTEGER AS id, (i / 4)::FLOAT AS x FROM range(0, 100) t(i)) TO '{0}/in/v1.parquet'\")\n\
         duckdb.sql(\"COPY (SELECT i::BIGINT AS id, (i / 4)::DOUBLE AS x FROM range(100, 200) t(i)) TO '{0}/in/v2.parquet'\")\n\
         duckdb.sql(\"COPY (SELECT i::BIGINT AS id, (i / 4)::DOUBLE AS x, 'n' || i AS note FROM range(200, 300) t(i)) TO '{0}/in/v3.parquet'\")\n",
        dir.display()
    );
    python(&script);
    let err = fails(dir, "[datasets.raw]\nread_parquet = \"in/*.parquet\"\n");
    assert!(err.contains("schema differs") && err.contains("schema = \"union\""), "{err}");
    let got = run(
        dir,
        "[datasets.raw]\nread_parquet = \"in/*.parquet\"\nschema = \"union\"\n\
         [datasets.some]\nfrom = \"raw\"\nfilter = \"id % 3 = 0 OR note IS NOT NULL\"\n",
        "some",
    );
    assert!(explain(dir).contains("schema=union"), "{}", explain(dir));
    let expected = duck(
        dir,
        &format!(
            "SELECT id, x, note FROM read_parquet('{}/in/*.parquet', union_by_name = true) WHERE id % 3 = 0 OR note IS NOT NULL",
            dir.display()
        ),
    );
    shoal_tests::data::assert_same_table(&got, &expected, "id").unwrap();
}

#[test]
fn a_job_reads_small_parquet_files_coalesced_unless_told_not_to() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let script = format!(
        "import duckdb\n\
         for f in range(40):\n    \
         duckdb.sql(f\"COPY (SELECT i AS id, i % 7 AS k FROM range({{f * 50}}, {{f * 50 + 50}}) t(i)) TO '{0}/in/part.{{f}}.parquet'\")\n",
        dir.display()
    );
    python(&script);
    let expected =
        duck(dir, &format!("SELECT k, count(*) AS n FROM '{}/in/*.parquet' GROUP BY k", dir.display()));
    let groups = "[datasets.counts]\nfrom = \"raw\"\ngroupby = [\"k\"]\nagg = { n = \"count(*)\" }\n";
    for (option, coalesced) in [("", true), ("coalesce = false\n", false)] {
        let datasets = format!("[datasets.raw]\nread_parquet = \"in/*.parquet\"\n{option}{groups}");
        let got = run(dir, &datasets, "counts");
        shoal_tests::data::assert_same_table(&got, &expected, "k").unwrap();
        // Two workers: at least 8 partitions remain (twice the workers, and the optimizer's
        // minimum), whatever the machine's cores.
        let out = shoal(&["explain", "job.toml", "--workers", "2"], dir);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let plan = String::from_utf8_lossy(&out.stdout);
        let partitions: usize = plan
            .split("[40 files, ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{option:?}: no scan of 40 files in {plan}"));
        match coalesced {
            true => assert!((8..40).contains(&partitions), "{option:?}: {plan}"),
            false => assert_eq!(partitions, 40, "{option:?}: {plan}"),
        }
    }
}

#[test]
fn na_values_per_column_apply_to_their_column_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("in")).unwrap();
    // -999 is a gap in x but a real code in `code`; `?` a gap in `code` only.
    let mut text = String::from("id,x,code\n");
    for i in 0..200 {
        let x = if i % 7 == 3 { "-999".to_string() } else { format!("{i}.5") };
        let code = match i % 5 {
            0 => "-999".to_string(),
            1 => "?".to_string(),
            2 => "NA".to_string(),
            _ => format!("c{i}"),
        };
        text.push_str(&format!("{i},{x},{code}\n"));
    }
    std::fs::write(dir.join("in/part-0.csv"), text).unwrap();
    let got = run(
        dir,
        "[datasets.raw]\nread_csv = \"in/*.csv\"\nna_values = { x = [\"-999\"], code = [\"?\"] }\n",
        "raw",
    );
    let expected = duck(
        dir,
        &format!(
            "SELECT id::BIGINT AS id, (CASE WHEN x = '-999' THEN NULL ELSE x END)::DOUBLE AS x, \
             CASE WHEN code IN ('?', 'NA') THEN NULL ELSE code END AS code \
             FROM read_csv('{}/in/part-0.csv', header = true, all_varchar = true)",
            dir.display()
        ),
    );
    shoal_tests::data::assert_same_table(&got, &expected, "id").unwrap();
    let err = fails(dir, "[datasets.raw]\nread_csv = \"in/*.csv\"\nna_values = { y = [\"-999\"] }\n");
    assert!(err.contains("na_values: no column 'y'"), "{err}");
}

#[test]
fn bad_text_inputs_are_one_clear_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("in")).unwrap();
    // Later rows with more fields than the header.
    let mut text = String::from("id,x\n");
    for i in 0..50 {
        text.push_str(&format!("{i},{i}\n"));
    }
    text.push_str("50,1,extra\n");
    std::fs::write(dir.join("in/wide.csv"), &text).unwrap();
    let err = fails(dir, "[datasets.raw]\nread_csv = \"in/wide.csv\"\n");
    assert!(err.contains("wide.csv") && err.contains("line 52"), "{err}");
    // A value that does not fit the type the user gave.
    std::fs::write(dir.join("in/typed.csv"), "id,x\n1,2\n2,3.5\n").unwrap();
    let err = fails(dir, "[datasets.raw]\nread_csv = \"in/typed.csv\"\ndtype = { x = \"int64\" }\n");
    assert!(err.contains("typed.csv: line 3, column 'x': cannot read '3.5' as Int64"), "{err}");
    // A truncated .gz file.
    let script = format!(
        "import gzip\ndata = gzip.compress(b'id,x\\n' + b''.join(b'%d,%d\\n' % (i, i) for i in range(20000)))\n\
         open('{0}/in/cut.csv.gz', 'wb').write(data[: len(data) // 2])\n",
        dir.display()
    );
    python(&script);
    let err = fails(dir, "[datasets.raw]\nread_csv = \"in/cut.csv.gz\"\n");
    assert!(err.contains("cut.csv.gz") && err.contains("not a valid Gzip file"), "{err}");
}

/// One 300 MB CSV read in blocks of the default size, compared whole with DuckDB's reading of
/// the same file (every row, both ways, by DuckDB's `EXCEPT ALL`).
#[test]
fn a_300_mb_csv_split_into_default_blocks_equals_duckdb() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let py = shoal_tests::python::test_python().unwrap();
    // Quoted text with commas and doubled quotes, numbers, gaps, unicode.
    let script = format!(
        "import duckdb\nduckdb.sql(\"\"\"COPY (SELECT i AS id, 'name, \"' || (i % 977) || '\" ü' || repeat('x', (i % 23)::INT) AS text, \
         CASE WHEN i % 13 = 0 THEN NULL ELSE (i * 0.25) END AS amount, i % 7 AS k FROM range(0, 6500000) t(i)) \
         TO '{0}/in/big.csv' (HEADER, QUOTE '\"')\"\"\")\n",
        dir.display()
    );
    let out = std::process::Command::new(&py).args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let size = std::fs::metadata(dir.join("in/big.csv")).unwrap().len();
    assert!(size > 300_000_000, "{size} bytes");
    run(dir, "[datasets.raw]\nread_csv = \"in/big.csv\"\n", "raw");
    let plan = explain(dir);
    let blocks = (size as f64 / 64e6).ceil() as usize;
    assert!(plan.contains(&format!("blocks={blocks}")), "{size} bytes in 64 MB blocks: {plan}");
    let diff = duck(
        dir,
        &format!(
            "WITH s AS (SELECT * FROM read_parquet('{0}/out-raw/*.parquet')), \
                  d AS (SELECT * FROM read_csv('{0}/in/big.csv', header = true)) \
             SELECT (SELECT count(*) FROM s) AS shoal_rows, (SELECT count(*) FROM d) AS duck_rows, \
                    (SELECT count(*) FROM (SELECT * FROM s EXCEPT ALL SELECT * FROM d)) AS only_shoal, \
                    (SELECT count(*) FROM (SELECT * FROM d EXCEPT ALL SELECT * FROM s)) AS only_duck",
            dir.display()
        ),
    );
    let row = arrow::util::pretty::pretty_format_batches(&diff).unwrap().to_string();
    let counts: Vec<i64> = (0..4)
        .map(|c| diff[0].column(c).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().value(0))
        .collect();
    assert_eq!(counts, vec![6_500_000, 6_500_000, 0, 0], "{row}");
}

/// pandas as the reference: it reads a CSV with every missing-value spelling, quoted line
/// breaks and Latin-1 text as shoal does, and reads shoal's `to_csv` / `to_json` parts back to
/// the rows shoal wrote.
#[test]
fn pandas_reads_as_shoal_reads_and_reads_what_shoal_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let gaps = ["NA", "N/A", "", "null", "nan", "NULL", "#N/A", "<NA>", "None", "n/a", "-NaN", "1.#QNAN"];
    let mut text = String::from("id,x,label,note\n");
    for i in 0..300 {
        let x = if i % 5 == 2 { gaps[i % gaps.len()].to_string() } else { format!("{}.125", i) };
        let label =
            if i % 11 == 0 { gaps[(i / 11) % gaps.len()].to_string() } else { format!("é{}", i % 4) };
        let note = if i % 9 == 0 { "\"two\nlines, \"\"q\"\"\"".to_string() } else { format!("n{i}") };
        text.push_str(&format!("{i},{x},{label},{note}\n"));
    }
    let latin1: Vec<u8> = text.chars().map(|c| u8::try_from(u32::from(c)).unwrap()).collect();
    std::fs::write(dir.join("in/data.csv"), latin1).unwrap();
    let datasets = "[datasets.raw]\nread_csv = \"in/*.csv\"\nencoding = \"latin-1\"\n";
    let got = run(dir, datasets, "raw");
    // Both writers, from the same dataset.
    std::fs::write(
        dir.join("job.toml"),
        format!("{datasets}[[outputs]]\ndataset = \"raw\"\nto_csv = \"csv\"\n[[outputs]]\ndataset = \"raw\"\nto_json = \"json\"\n"),
    )
    .unwrap();
    let out = shoal(&["run", "job.toml", "--root", "root", "--executor", "threads"], dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let script = format!(
        "import glob, pandas as pd\n\
         d = '{0}'\n\
         pd.read_csv(d + '/in/data.csv', encoding='latin-1').to_parquet(d + '/pandas-read.parquet')\n\
         parts = sorted(glob.glob(d + '/csv/part-*.csv'))\n\
         pd.concat([pd.read_csv(p) for p in parts]).to_parquet(d + '/pandas-csv.parquet')\n\
         parts = sorted(glob.glob(d + '/json/part-*.jsonl'))\n\
         pd.concat([pd.read_json(p, lines=True) for p in parts]).to_parquet(d + '/pandas-json.parquet')\n",
        dir.display()
    );
    python(&script);
    for reference in ["pandas-read", "pandas-csv", "pandas-json"] {
        let expected = read_parquet_dir(dir.join(format!("{reference}.parquet"))).unwrap();
        shoal_tests::data::assert_same_table(&got, &expected, "id")
            .unwrap_or_else(|e| panic!("{reference}: {e}"));
    }
}

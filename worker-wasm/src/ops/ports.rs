//! Side-table ports: which of a task's inputs feed which operator.
//!
//! `reads` are the side ports a task's operators read, one per reading operator.

use crate::error::{Error, Result};
use shoal_protocol::{Input, Output, Partitioning};
use std::collections::{BTreeMap, BTreeSet};

/// Checks that a task's inputs and its operators agree on the side-table ports: every side port
/// an input feeds is read by exactly one operator (a join) or by the output (a range shuffle's
/// boundaries), every port they read is fed, and there is a main input (port 0). Two tables
/// sharing one port would be appended into one table, so this refuses such a task outright.
pub fn check(inputs: &[Input], reads: impl IntoIterator<Item = u32>, output: &Output) -> Result<()> {
    let fed: BTreeSet<u32> = inputs.iter().map(Input::port).collect();
    if !fed.contains(&0) {
        return Err(Error::InvalidTask("the task has no main input (port 0)".into()));
    }
    let mut read: BTreeMap<u32, usize> = BTreeMap::new();
    let range_bounds = match output {
        Output::Shuffle { partitioning: Partitioning::Range { port, .. } } => Some(*port),
        _ => None,
    };
    let ports = reads.into_iter().chain(range_bounds);
    for port in ports {
        if port == 0 {
            return Err(Error::InvalidTask(
                "an operator reads its side table from port 0, the main input".into(),
            ));
        }
        *read.entry(port).or_default() += 1;
    }
    if let Some((port, n)) = read.iter().find(|(_, n)| **n > 1) {
        return Err(Error::InvalidTask(format!("{n} operators of one task read side table {port}")));
    }
    let sides: BTreeSet<u32> = fed.iter().copied().filter(|p| *p != 0).collect();
    let wanted: BTreeSet<u32> = read.keys().copied().collect();
    if sides != wanted {
        let list = |s: &BTreeSet<u32>| s.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        return Err(Error::InvalidTask(format!(
            "the task's inputs feed side tables [{}] but its operators read [{}]",
            list(&sides),
            list(&wanted)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ops::check_ports;
    use shoal_protocol::{Input, JoinHow, Operator, Output, Partitioning, TableOp};

    fn side(port: u32) -> Input {
        Input::Upstream {
            task_key: shoal_protocol::TaskKey(format!("t{port}")),
            objects: vec![],
            bucket: None,
            ranges: vec![],
            port,
            schema: None,
        }
    }

    fn join_on(port: u32) -> Operator {
        TableOp::Join {
            port,
            how: JoinHow::Inner,
            left_on: vec!["k".into()],
            right_on: vec!["k".into()],
            suffixes: ("_x".into(), "_y".into()),
            build: Default::default(),
        }
        .into()
    }

    #[test]
    fn ports_must_agree_with_operators() {
        let out = Output::Intermediate;
        check_ports(&[side(0), side(1), side(2)], &[join_on(1), join_on(2)], &out).unwrap();
        let range = Output::Shuffle { partitioning: Partitioning::Range { keys: vec![], port: 2, n: 2 } };
        check_ports(&[side(0), side(1), side(2)], &[join_on(1)], &range).unwrap();
        // Two joins fed by one port (the bug of fused broadcast chains).
        let err = check_ports(&[side(0), side(1), side(1)], &[join_on(1), join_on(1)], &out).unwrap_err();
        assert!(err.to_string().contains("2 operators of one task read side table 1"), "{err}");
        // A side table nobody reads, and a join whose table is not fed.
        let err = check_ports(&[side(0), side(1), side(2)], &[join_on(1)], &out).unwrap_err();
        assert!(err.to_string().contains("feed side tables [1, 2] but its operators read [1]"), "{err}");
        let err = check_ports(&[side(0)], &[join_on(3)], &out).unwrap_err();
        assert!(err.to_string().contains("read [3]"), "{err}");
        let err = check_ports(&[side(1)], &[join_on(1)], &out).unwrap_err();
        assert!(err.to_string().contains("no main input"), "{err}");
        assert!(matches!(err.kind(), shoal_protocol::FailureKind::Fatal));
    }
}

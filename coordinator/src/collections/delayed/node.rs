//! The recorded calls: each Delayed value is a [`Node`], a call of one function on its
//! arguments, sharing the nodes of the values it reads (a DAG of `Arc`s). Nothing about a node
//! is computed when it is recorded; lowering walks the DAG once.

use crate::client::FunctionModule;
use crate::collections::bag::Bag;
use crate::collections::dataframe::DataFrame;
use shoal_protocol::FunctionRef;
use std::sync::Arc;

/// One call of a `value` function.
pub(crate) struct Node {
    pub module: Arc<FunctionModule>,
    pub function: FunctionRef,
    pub args: Vec<NodeArg>,
}

/// One positional argument of a [`Node`].
pub(crate) enum NodeArg {
    Literal(serde_json::Value),
    Value(Arc<Node>),
    Frame(DataFrame),
    Bag(Bag),
}

impl Drop for Node {
    /// Drops a chain of calls without recursion: a chain of 100,000 calls would otherwise drop
    /// each node inside its parent's drop and overflow the stack.
    fn drop(&mut self) {
        let mut stack: Vec<Arc<Node>> = take_values(&mut self.args);
        while let Some(node) = stack.pop() {
            if let Ok(mut node) = Arc::try_unwrap(node) {
                stack.extend(take_values(&mut node.args));
            }
        }
    }
}

fn take_values(args: &mut Vec<NodeArg>) -> Vec<Arc<Node>> {
    std::mem::take(args)
        .into_iter()
        .filter_map(|a| match a {
            NodeArg::Value(n) => Some(n),
            _ => None,
        })
        .collect()
}

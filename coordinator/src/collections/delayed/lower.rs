//! Lowering Delayed values to a task graph: each distinct call is one task (in a stage per
//! function, `call-<name>`) reading the tasks of its Delayed arguments, and every output task
//! of a DataFrame argument, as input ports; a DataFrame's own graph is spliced in.
//!
//! Linear in the size of the DAG: nodes are visited once with an explicit stack (a chain of
//! 100,000 calls needs no deep recursion), memoized by identity, and tasks deduplicated by key
//! (a content hash of the function, its arguments and its inputs' keys), so shared work, built
//! twice or not, runs once.

use super::node::{Node, NodeArg};
use crate::client::FunctionModule;
use crate::error::Result;
use crate::graph::{TaskGraph, TaskNode, upstream_port};
use shoal_protocol::{CallArg, CallOp, Operator, Output, TaskKey};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A graph being built from Delayed values.
#[derive(Default)]
pub(crate) struct Lowering {
    pub graph: TaskGraph,
    /// The modules the graph's tasks call, one per SHA-256.
    pub modules: Vec<FunctionModule>,
    by_node: HashMap<usize, usize>,
    by_key: HashMap<TaskKey, usize>,
    /// A collection argument's output tasks, by its plan's identity.
    frames: HashMap<usize, Vec<usize>>,
    /// The stage of each function's calls, by stage name.
    stages: HashMap<String, usize>,
}

/// Where a port's input comes from: one task, or a DataFrame's outputs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    Task(usize),
    Collection(usize),
}

impl Lowering {
    /// The task computing `root` (lowering it and everything it reads first).
    pub fn task(&mut self, root: &Arc<Node>) -> Result<usize> {
        let mut stack: Vec<(&Arc<Node>, bool)> = vec![(root, false)];
        while let Some((node, expanded)) = stack.pop() {
            if self.by_node.contains_key(&Arc::as_ptr(node).addr()) {
                continue;
            }
            if expanded {
                let task = self.push_call(node)?;
                self.by_node.insert(Arc::as_ptr(node).addr(), task);
                continue;
            }
            stack.push((node, true));
            for arg in &node.args {
                match arg {
                    NodeArg::Value(n) if !self.by_node.contains_key(&Arc::as_ptr(n).addr()) => {
                        stack.push((n, false))
                    }
                    NodeArg::Frame(df) => {
                        self.collection(std::ptr::from_ref(df.plan()).addr(), || {
                            df.lowered().map(|(graph, modules, _)| (graph, modules))
                        })?;
                    }
                    NodeArg::Bag(bag) => self.collection(bag.identity(), || bag.lowered())?,
                    _ => {}
                }
            }
        }
        Ok(self.by_node[&Arc::as_ptr(root).addr()])
    }

    /// The task of one call whose arguments are all lowered.
    fn push_call(&mut self, node: &Node) -> Result<usize> {
        let mut ports: HashMap<Source, u32> = HashMap::new();
        let (mut inputs, mut deps, mut args) = (Vec::new(), Vec::new(), Vec::with_capacity(node.args.len()));
        let mut seen = HashSet::new();
        for arg in &node.args {
            let source = match arg {
                NodeArg::Literal(value) => {
                    args.push(CallArg::Literal { value: value.clone() });
                    continue;
                }
                NodeArg::Value(n) => Source::Task(self.by_node[&Arc::as_ptr(n).addr()]),
                NodeArg::Frame(df) => Source::Collection(std::ptr::from_ref(df.plan()).addr()),
                NodeArg::Bag(bag) => Source::Collection(bag.identity()),
            };
            let next = ports.len() as u32;
            let port = *ports.entry(source).or_insert_with(|| {
                let tasks = match source {
                    Source::Task(t) => vec![t],
                    Source::Collection(p) => self.frames.get(&p).cloned().unwrap_or_default(),
                };
                for t in tasks {
                    inputs.push(upstream_port(&self.graph.tasks[t].key, next));
                    if seen.insert(t) {
                        deps.push(t);
                    }
                }
                next
            });
            args.push(CallArg::Port { port });
        }
        let name = format!("call-{}", node.function.function);
        let pipeline = vec![Operator::Calls(CallOp::Call { function: node.function.clone(), args })];
        let output = Output::Intermediate;
        let key = TaskKey::derive(&name, &(&inputs, &pipeline, &output));
        if let Some(&task) = self.by_key.get(&key) {
            return Ok(task);
        }
        self.module(&node.module);
        let stage = self.stage(&name, &node.function.function);
        let index = self.graph.stages[stage].tasks.len();
        let task = self.graph.push(TaskNode {
            key: key.clone(),
            stage,
            index,
            deps,
            inputs,
            pipeline,
            output,
            skip_if_empty: false,
        });
        self.by_key.insert(key, task);
        Ok(task)
    }

    /// The stage of `function`'s calls.
    fn stage(&mut self, name: &str, function: &str) -> usize {
        if let Some(&s) = self.stages.get(name) {
            return s;
        }
        let schema = Some(shoal_worker::ops::calls::value_schema());
        let s = self.graph.stage(name, vec![format!("call {function}")], 0, schema);
        self.stages.insert(name.to_string(), s);
        s
    }

    fn module(&mut self, module: &FunctionModule) {
        if !self.modules.iter().any(|m| m.reference.sha256 == module.reference.sha256) {
            self.modules.push(module.clone());
        }
    }

    /// Splices the graph of a collection argument in, once per plan (`id`); tasks already
    /// present by key are shared.
    fn collection(
        &mut self,
        id: usize,
        lowered: impl FnOnce() -> Result<(TaskGraph, Vec<FunctionModule>)>,
    ) -> Result<()> {
        if self.frames.contains_key(&id) {
            return Ok(());
        }
        let (graph, modules) = lowered()?;
        for m in &modules {
            self.module(m);
        }
        let before = self.graph.tasks.len();
        let outputs = self.graph.extend(&graph);
        for t in before..self.graph.tasks.len() {
            self.by_key.insert(self.graph.tasks[t].key.clone(), t);
        }
        self.frames.insert(id, outputs);
        Ok(())
    }
}

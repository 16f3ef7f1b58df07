//! The task graph: collection-agnostic. DataFrame lowering produces it today; Bag, Array and
//! Delayed lower to the same structure. A task is one partition of one stage; its key is a
//! content hash of what it computes (inputs incl. object identity, pipeline, output).

use arrow::datatypes::SchemaRef;
use shoal_protocol::{Input, Operator, Output, SortKey, TaskKey};

/// One task: what to run, and which tasks' committed outputs it reads.
#[derive(Debug, Clone)]
pub struct TaskNode {
    pub key: TaskKey,
    pub stage: usize,
    /// Partition index within the stage.
    pub index: usize,
    /// Indices (into [`TaskGraph::tasks`]) of the tasks whose outputs this one reads; each
    /// `Upstream` input names its task by key ([`TaskGraph::inputs_with_deps`]).
    pub deps: Vec<usize>,
    pub inputs: Vec<Input>,
    pub pipeline: Vec<Operator>,
    pub output: Output,
    /// The task's output is empty whenever all its inputs are (it reads no files, and its
    /// pipeline keeps nothing of nothing): the scheduler then commits an empty manifest for it
    /// instead of running it.
    pub skip_if_empty: bool,
}

/// A group of tasks doing the same work on different partitions.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    /// One line per fused operator, for `explain`.
    pub operators: Vec<String>,
    pub tasks: Vec<usize>,
    /// Bytes the stage reads, as far as planning can tell.
    pub estimated_bytes: u64,
    /// Schema of the stage's output, derived at plan time with the worker's own code from the
    /// schemas of its inputs (`None`: aggregation states, typed by the aggregation itself).
    pub schema: Option<SchemaRef>,
}

/// A DAG of tasks; dependencies always point to earlier tasks.
#[derive(Debug, Clone, Default)]
pub struct TaskGraph {
    pub tasks: Vec<TaskNode>,
    pub stages: Vec<Stage>,
    /// The tasks whose outputs are the result, in partition order.
    pub outputs: Vec<usize>,
    /// How the result is read from the outputs of those tasks.
    pub collect: Collect,
}

/// How a run's result is read from its output tasks' committed objects.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Collect {
    /// Every output task's objects, one task after another.
    #[default]
    Concat,
    /// The last step of a sort, left to the reader: the output tasks are a range shuffle's map
    /// tasks, each of whose `buckets` buckets is sorted by `keys`; partition `b` of the result is
    /// bucket `b` of every one of them, merged. Only `compute()` reads such a graph: another
    /// graph cannot take its outputs as inputs ([`TaskGraph::extend`]).
    MergeBuckets { keys: Vec<SortKey>, buckets: u32 },
}

impl TaskGraph {
    /// Adds a task and returns its index.
    pub fn push(&mut self, node: TaskNode) -> usize {
        debug_assert!(node.deps.iter().all(|&d| d < self.tasks.len()));
        let stage = node.stage;
        self.tasks.push(node);
        let id = self.tasks.len() - 1;
        if let Some(s) = self.stages.get_mut(stage) {
            s.tasks.push(id);
        }
        id
    }

    /// Starts a new stage and returns its index.
    pub fn stage(
        &mut self,
        name: impl Into<String>,
        operators: Vec<String>,
        estimated_bytes: u64,
        schema: Option<SchemaRef>,
    ) -> usize {
        self.stages.push(Stage { name: name.into(), operators, tasks: vec![], estimated_bytes, schema });
        self.stages.len() - 1
    }

    /// The inputs of `task`, each with the dependency whose output feeds it (by task key; `None`
    /// for a scan). The one link between a task's `deps` and its `Upstream` inputs, so their
    /// order need not agree.
    pub fn inputs_with_deps(&self, task: usize) -> impl Iterator<Item = (&Input, Option<usize>)> + '_ {
        let node = &self.tasks[task];
        let by_key: std::collections::HashMap<&TaskKey, usize> =
            node.deps.iter().map(|&d| (&self.tasks[d].key, d)).collect();
        node.inputs.iter().map(move |input| match input {
            Input::Upstream { task_key, .. } => (input, by_key.get(task_key).copied()),
            Input::Scan { .. } | Input::Zarr { .. } => (input, None),
        })
    }

    /// For each stage, the stages it reads from (sorted, without repeats).
    pub fn stage_upstreams(&self) -> Vec<Vec<usize>> {
        let mut up: Vec<std::collections::BTreeSet<usize>> = vec![Default::default(); self.stages.len()];
        for t in &self.tasks {
            if let Some(set) = up.get_mut(t.stage) {
                set.extend(t.deps.iter().map(|&d| self.tasks[d].stage).filter(|&s| s != t.stage));
            }
        }
        up.into_iter().map(|s| s.into_iter().collect()).collect()
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Adds the tasks and stages of `other` (a graph another collection lowered), keeping a
    /// task this graph already has (same key: the same work) only once; returns the indices,
    /// in this graph, of `other`'s outputs. How one collection's result feeds another's plan;
    /// `other`'s result must be its outputs whole ([`Collect::Concat`]).
    pub fn extend(&mut self, other: &TaskGraph) -> Vec<usize> {
        debug_assert_eq!(other.collect, Collect::Concat, "a graph whose reader merges its outputs");
        let mut by_key: std::collections::HashMap<TaskKey, usize> =
            self.tasks.iter().enumerate().map(|(i, t)| (t.key.clone(), i)).collect();
        let mut stage_of: Vec<Option<usize>> = vec![None; other.stages.len()];
        let mut index: Vec<usize> = Vec::with_capacity(other.tasks.len());
        for task in &other.tasks {
            if let Some(&existing) = by_key.get(&task.key) {
                index.push(existing);
                continue;
            }
            let stage = match stage_of.get(task.stage).copied().flatten() {
                Some(s) => s,
                None => {
                    let Some(s) = other.stages.get(task.stage) else { continue };
                    let id =
                        self.stage(s.name.clone(), s.operators.clone(), s.estimated_bytes, s.schema.clone());
                    if let Some(slot) = stage_of.get_mut(task.stage) {
                        *slot = Some(id);
                    }
                    id
                }
            };
            let node =
                TaskNode { stage, deps: task.deps.iter().map(|&d| index[d]).collect(), ..task.clone() };
            let id = self.push(node);
            by_key.insert(task.key.clone(), id);
            index.push(id);
        }
        other.outputs.iter().map(|&o| index[o]).collect()
    }
}

/// Graphs larger than this get a warning: per-task overhead (a spec, a commit, a few requests)
/// starts to dominate, and larger partitions would do the same work with fewer tasks.
pub const MANY_TASKS: usize = 100_000;

/// The warning for a graph of `tasks` tasks, if it is too large.
pub fn many_tasks_warning(tasks: usize) -> Option<String> {
    (tasks > MANY_TASKS).then(|| {
        format!(
            "the task graph has {tasks} tasks (more than {MANY_TASKS}); per-task overhead will dominate: \
             use larger partitions (fewer input files, repartition, npartitions, split_out)"
        )
    })
}

/// Upstream input placeholder for a dependency; the scheduler fills in its objects.
pub fn upstream(key: &TaskKey) -> Input {
    Input::Upstream {
        task_key: key.clone(),
        objects: vec![],
        bucket: None,
        ranges: vec![],
        port: 0,
        schema: None,
    }
}

/// One bucket of a shuffle map task's output, feeding table `port` of the reader.
pub fn upstream_bucket(key: &TaskKey, bucket: u32, port: u32) -> Input {
    Input::Upstream {
        task_key: key.clone(),
        objects: vec![],
        bucket: Some(bucket),
        ranges: vec![],
        port,
        schema: None,
    }
}

/// The whole output of a task, feeding side table `port` of the reader.
pub fn upstream_port(key: &TaskKey, port: u32) -> Input {
    Input::Upstream {
        task_key: key.clone(),
        objects: vec![],
        bucket: None,
        ranges: vec![],
        port,
        schema: None,
    }
}

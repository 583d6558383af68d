//! The layout pass: channels-last (NHWC) networks run channels-first.
//!
//! kiln's convolution, depthwise, pooling and resampling kernels are built
//! for NCHW (channels on the outer axis, pixels along the vector lanes); a
//! TFLite model (and any WebNN graph built with `inputLayout: "nhwc"`)
//! arrives NHWC. This pass rewrites every NHWC `conv2d`,
//! `convTranspose2d` (input layout, not the filter's) to NCHW and lets
//! the channels-first form flow on through the operators that do not care
//! about layout (element-wise operators, with constants and lower-rank
//! operands re-laid out to broadcast the same way; `concat`, `pad`,
//! `slice`, `split`, `softmax`, reductions, pooling, `resample2d`,
//! batch and instance normalization, with their axes renumbered). A value
//! goes back to NHWC, by one transpose, only where an operator that
//! depends on the layout (a `reshape`, a `gemm`, a graph output, ...)
//! reads it; each value is transposed at most once each way. Constants
//! are transposed at compile time, constant filters among them: to OIHW
//! (IOHW for `convTranspose2d`), the layout the depthwise and direct
//! convolution kernels read.
//!
//! The pass walks the graph once, in order, keeping for every operand of
//! the input graph its value in the output graph in either form (or
//! both). Graphs without an NHWC convolution come back unchanged.

use kiln_ir::infer::{resolved_permutation, resolved_reduce_axes};
use kiln_ir::interp::fold_node;
use kiln_ir::{
    Conv2dFilterLayout, ConvTranspose2dFilterLayout, Graph, GraphError, InputLayout, Op, OperandId, OperandKind,
};

/// `first = transpose(last, TO_FIRST)`: NHWC to NCHW. Axis `i` of the
/// channels-first value is axis `TO_FIRST[i]` of the channels-last one.
const TO_FIRST: [u32; 4] = [0, 3, 1, 2];
/// `last = transpose(first, TO_LAST)`; also where channels-last axis `a`
/// sits in the channels-first value: `TO_LAST[a]`.
const TO_LAST: [u32; 4] = [0, 2, 3, 1];

/// What [`relayout`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relayout {
    /// Nodes computed channels-first.
    pub channels_first: usize,
    /// Transposes added (between layouts; constants transposed at compile
    /// time not counted).
    pub transposes: usize,
}

/// How a node of the input graph is computed.
enum Form {
    /// As it is, from operands as they are.
    Unchanged,
    /// Rewritten to read channels-first operands; its results are
    /// channels-first.
    ChannelsFirst(Op),
    /// Rewritten to read channels-first operands; its results are laid out
    /// as the original's (a transpose, a reduction that drops the spatial
    /// axes).
    SameResults(Op),
}

/// Which operands of a rewritten node are read channels-first.
enum Read {
    /// The operand named `input` (the others as they are: filters, biases,
    /// statistics).
    Input,
    /// Every operand (`concat`).
    All,
    /// Every operand, broadcast against a channels-first 4-D value.
    Broadcast,
}

struct State<'g> {
    input: &'g Graph,
    out: Graph,
    /// Per input-graph operand: its value as is (channels-last for 4-D
    /// values of the network), and channels-first.
    last: Vec<Option<OperandId>>,
    first: Vec<Option<OperandId>>,
    /// A convolution's constant filter (input-graph id) and its reordered
    /// value, for the node being rewritten.
    reordered: Option<(OperandId, OperandId)>,
    record: Relayout,
}

/// Whether `graph` has an NHWC convolution, the reason to relayout.
fn has_nhwc_convolution(graph: &Graph) -> bool {
    graph.nodes().iter().any(|n| match &n.op {
        Op::Conv2d { options, .. } => options.input_layout == InputLayout::Nhwc,
        Op::ConvTranspose2d { options, .. } => options.input_layout == InputLayout::Nhwc,
        _ => false,
    })
}

/// `graph` with its NHWC convolutions and what flows between them
/// channels-first (see the module documentation); the same graph when it
/// has no NHWC convolution.
pub fn relayout(graph: &Graph) -> Result<(Graph, Relayout), GraphError> {
    if !has_nhwc_convolution(graph) {
        return Ok((graph.clone(), Relayout::default()));
    }
    let n = graph.operands().len();
    let mut s = State { input: graph, out: Graph::new(), last: vec![None; n], first: vec![None; n], reordered: None, record: Relayout::default() };
    for &id in graph.inputs() {
        let name = graph.input_name(id).expect("an input has a name");
        s.last[id.index()] = Some(s.out.add_input(name, graph.desc(id).clone())?);
    }
    for (i, operand) in graph.operands().iter().enumerate() {
        if let OperandKind::Constant(t) = &operand.kind {
            s.last[i] = Some(s.out.add_constant(operand.name.as_deref(), t.clone())?);
        }
    }
    for node in graph.nodes() {
        let outputs = match s.channels_first(&node.op)? {
            Form::ChannelsFirst(op) => {
                s.record.channels_first += 1;
                let results = s.add(op, &node.label)?;
                for (&old, &new) in node.outputs.iter().zip(&results) {
                    s.first[old.index()] = Some(new);
                }
                results
            }
            Form::SameResults(op) => {
                s.record.channels_first += 1;
                let results = s.add(op, &node.label)?;
                for (&old, &new) in node.outputs.iter().zip(&results) {
                    s.last[old.index()] = Some(new);
                }
                results
            }
            Form::Unchanged => {
                let mut op = node.op.clone();
                for (_, id) in op.inputs_mut() {
                    *id = s.last(*id)?;
                }
                let results = s.out.add_node(op, &node.label)?;
                for (&old, &new) in node.outputs.iter().zip(&results) {
                    s.last[old.index()] = Some(new);
                }
                results
            }
        };
        for (&old, new) in node.outputs.iter().zip(outputs) {
            if let Some(name) = &graph.operand(old).name {
                s.out.set_name(new, name);
            }
        }
    }
    for (name, id) in graph.outputs() {
        let value = s.last(*id)?;
        s.out.add_output(name, value)?;
    }
    Ok((s.out.pruned(), s.record))
}

impl State<'_> {
    /// Adds `op`; computed now when all its operands are constants.
    fn add(&mut self, op: Op, label: &str) -> Result<Vec<OperandId>, GraphError> {
        let results = self.out.add_node(op, label)?;
        let node = self.out.nodes().last().expect("just added");
        match fold_node(&self.out, node) {
            Some(Ok(tensors)) => tensors.into_iter().map(|t| self.out.add_constant(None, t)).collect(),
            _ => Ok(results),
        }
    }

    fn transpose(&mut self, input: OperandId, permutation: [u32; 4]) -> Result<OperandId, GraphError> {
        let constant = matches!(self.out.operand(input).kind, OperandKind::Constant(_));
        let result = self.add(Op::Transpose { input, permutation: Some(permutation.to_vec()) }, "layout")?[0];
        if !constant {
            self.record.transposes += 1;
        }
        Ok(result)
    }

    /// Operand `id` of the input graph as it is there.
    fn last(&mut self, id: OperandId) -> Result<OperandId, GraphError> {
        if let Some(v) = self.last[id.index()] {
            return Ok(v);
        }
        let first = self.first[id.index()].expect("every operand has a value in one form");
        let v = self.transpose(first, TO_LAST)?;
        self.last[id.index()] = Some(v);
        Ok(v)
    }

    /// Operand `id` (4-D) channels-first.
    fn first(&mut self, id: OperandId) -> Result<OperandId, GraphError> {
        if let Some(v) = self.first[id.index()] {
            return Ok(v);
        }
        let last = self.last(id)?;
        let v = self.transpose(last, TO_FIRST)?;
        self.first[id.index()] = Some(v);
        Ok(v)
    }

    fn rank(&self, id: OperandId) -> usize {
        self.input.desc(id).shape.rank()
    }

    fn is_constant(&self, id: OperandId) -> bool {
        matches!(self.input.operand(id).kind, OperandKind::Constant(_))
    }

    /// Whether operand `id` has a channels-first value already.
    fn is_first(&self, id: OperandId) -> bool {
        self.first[id.index()].is_some()
    }

    /// An element-wise operand, to broadcast against a channels-first 4-D
    /// value as it did against the channels-last one: lower ranks gain
    /// leading 1s, then the channels move.
    fn broadcast_first(&mut self, id: OperandId) -> Result<OperandId, GraphError> {
        let rank = self.rank(id);
        if rank == 4 {
            return self.first(id);
        }
        let last = self.last(id)?;
        let mut dims = vec![1u32; 4 - rank];
        dims.extend_from_slice(self.input.desc(id).shape.dims());
        let reshaped = self.add(Op::Reshape { input: last, new_shape: dims }, "layout")?[0];
        self.transpose(reshaped, TO_FIRST)
    }

    /// How `op` is computed: rewritten to read channels-first operands, or
    /// unchanged.
    fn channels_first(&mut self, op: &Op) -> Result<Form, GraphError> {
        let inputs: Vec<OperandId> = op.inputs().into_iter().map(|(_, id)| id).collect();
        // Layout-agnostic operators follow their operands: channels-first
        // when one of them is (and nothing but that value is 4-D).
        let follows = inputs.iter().any(|&id| self.is_first(id));
        let mut new = op.clone();
        // Which operands are read channels-first (the others as they are),
        // and whether the results are channels-first.
        let mut read = Read::Input;
        let mut results_first = true;
        match &mut new {
            Op::Conv2d { filter, options, .. } if options.input_layout == InputLayout::Nhwc => {
                options.input_layout = InputLayout::Nchw;
                // A constant filter is reordered to OIHW at compile time:
                // the layout the depthwise and direct kernels read.
                let to_oihw = match options.filter_layout {
                    Conv2dFilterLayout::Oihw => None,
                    Conv2dFilterLayout::Hwio => Some([3, 2, 0, 1]),
                    Conv2dFilterLayout::Ohwi => Some([0, 3, 1, 2]),
                    Conv2dFilterLayout::Ihwo => Some([3, 0, 1, 2]),
                };
                if let Some(p) = to_oihw.filter(|_| self.is_constant(*filter)) {
                    let f = self.last(*filter)?;
                    self.reordered = Some((*filter, self.transpose(f, p)?));
                    options.filter_layout = Conv2dFilterLayout::Oihw;
                }
            }
            Op::ConvTranspose2d { filter, options, .. } if options.input_layout == InputLayout::Nhwc => {
                options.input_layout = InputLayout::Nchw;
                let to_iohw = match options.filter_layout {
                    ConvTranspose2dFilterLayout::Iohw => None,
                    ConvTranspose2dFilterLayout::Hwoi => Some([3, 2, 0, 1]),
                    ConvTranspose2dFilterLayout::Ohwi => Some([3, 0, 1, 2]),
                };
                if let Some(p) = to_iohw.filter(|_| self.is_constant(*filter)) {
                    let f = self.last(*filter)?;
                    self.reordered = Some((*filter, self.transpose(f, p)?));
                    options.filter_layout = ConvTranspose2dFilterLayout::Iohw;
                }
            }
            Op::Pool2d { options, .. } if follows && options.layout == InputLayout::Nhwc => {
                options.layout = InputLayout::Nchw;
            }
            Op::InstanceNormalization { options, .. } if follows && options.layout == InputLayout::Nhwc => {
                options.layout = InputLayout::Nchw;
            }
            Op::Resample2d { input, options } if follows && self.rank(*input) == 4 => {
                options.axes = options.axes.map(|a| TO_LAST[a as usize]);
                if options.axes[0] > options.axes[1] {
                    // WebNN takes the axes in order; swap their parameters too.
                    options.axes.swap(0, 1);
                    if let Some(s) = &mut options.scales {
                        s.swap(0, 1);
                    }
                    if let Some(s) = &mut options.sizes {
                        s.swap(0, 1);
                    }
                }
            }
            Op::BatchNormalization { input, options, .. } if follows && self.rank(*input) == 4 => {
                options.axis = TO_LAST[options.axis as usize];
            }
            Op::Unary { input, .. }
            | Op::Clamp { input, .. }
            | Op::Elu { input, .. }
            | Op::LeakyRelu { input, .. }
            | Op::HardSigmoid { input, .. }
            | Op::Linear { input, .. }
            | Op::Cast { input, .. }
                if self.is_first(*input) => {}
            Op::Binary { .. } | Op::Compare { .. } | Op::Logical { .. } | Op::Where { .. } | Op::Prelu { .. }
                if follows && self.elementwise_fits(&inputs) =>
            {
                read = Read::Broadcast;
            }
            Op::Concat { inputs: parts, axis } if follows && parts.iter().all(|&p| self.rank(p) == 4) => {
                *axis = TO_LAST[*axis as usize];
                read = Read::All;
            }
            Op::Pad { beginning_padding, ending_padding, .. } if follows => {
                *beginning_padding = TO_FIRST.iter().map(|&a| beginning_padding[a as usize]).collect();
                *ending_padding = TO_FIRST.iter().map(|&a| ending_padding[a as usize]).collect();
            }
            Op::Slice { starts, sizes, strides, .. } if follows => {
                *starts = TO_FIRST.iter().map(|&a| starts[a as usize]).collect();
                *sizes = TO_FIRST.iter().map(|&a| sizes[a as usize]).collect();
                if let Some(s) = strides {
                    *s = TO_FIRST.iter().map(|&a| s[a as usize]).collect();
                }
            }
            Op::Split { axis, .. } | Op::Softmax { axis, .. } if follows => {
                *axis = TO_LAST[*axis as usize];
            }
            Op::Reduce { options, .. } if follows => {
                let axes = resolved_reduce_axes(options, 4);
                if !options.keep_dimensions {
                    // Without kept dimensions the result is laid out as the
                    // original's when the remaining axes keep their order.
                    let kept: Vec<u32> = (0..4u32).filter(|a| !axes.contains(a)).map(|a| TO_LAST[a as usize]).collect();
                    if !kept.windows(2).all(|w| w[0] < w[1]) {
                        return Ok(Form::Unchanged);
                    }
                    results_first = false;
                }
                let mut axes: Vec<u32> = axes.iter().map(|&a| TO_LAST[a as usize]).collect();
                axes.sort_unstable();
                options.axes = Some(axes);
            }
            Op::Transpose { permutation, .. } if follows => {
                // One transpose from channels-first to the result.
                let q = resolved_permutation(permutation, 4);
                *permutation = Some(q.iter().map(|&a| TO_LAST[a as usize]).collect());
                results_first = false;
            }
            _ => return Ok(Form::Unchanged),
        }
        let reordered = self.reordered.take();
        for (name, id) in new.inputs_mut() {
            *id = match read {
                Read::Input if name == "filter" && reordered.is_some_and(|(old, _)| old == *id) => {
                    reordered.expect("checked").1
                }
                Read::Input if name == "input" => self.first(*id)?,
                Read::Input => self.last(*id)?,
                Read::All => self.first(*id)?,
                Read::Broadcast => self.broadcast_first(*id)?,
            };
        }
        Ok(if results_first { Form::ChannelsFirst(new) } else { Form::SameResults(new) })
    }

    /// Element-wise operands that broadcast to one 4-D result.
    fn elementwise_fits(&self, inputs: &[OperandId]) -> bool {
        inputs.iter().all(|&id| self.rank(id) <= 4) && inputs.iter().any(|&id| self.rank(id) == 4)
    }
}

//! WebNN's `MLTensor`: tensors a context owns, written, dispatched and read
//! by name, in the order of the calls.
//!
//! [`Context::create_tensor`] makes one (zero-filled), with usage flags;
//! [`Context::write_tensor`] copies the caller's bytes in (the caller's
//! buffer may change right after); [`Context::dispatch_tensors`] runs a
//! graph on input tensors and leaves its results in output tensors, with no
//! copy through the caller; [`Context::read_tensor`] resolves to a tensor's
//! value. Writes, dispatches and reads are queued on the context's dispatch
//! thread in call order, so a read sees every earlier write and dispatch.
//! Rules are checked when the call is made and broken ones are errors
//! then: a destroyed tensor or graph, a tensor of another context, a
//! missing usage flag, a descriptor or name that does not match the graph,
//! a tensor used as both an input and an output.
//!
//! Storage is host memory for every backend: on the cpu backend the
//! kernels read input tensors in place and their results become the
//! output tensors' values (no copy); the gpu backend copies to and from
//! its buffers on each dispatch.

use std::sync::{Arc, Mutex, MutexGuard};

use kiln_ir::{OperandDescriptor, Tensor};

use crate::dispatch::{Dispatch, Dispatcher};
use crate::{CompiledGraph, Context, RuntimeError};

/// `MLTensorDescriptor`'s usage: whether [`Context::read_tensor`] and
/// [`Context::write_tensor`] may be called on the tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TensorUsage {
    pub readable: bool,
    pub writable: bool,
}

/// A tensor owned by a [`Context`] (`MLTensor`). Cloning shares it; it is
/// `Send + Sync`.
#[derive(Clone)]
pub struct DeviceTensor {
    inner: Arc<TensorState>,
}

struct TensorState {
    desc: OperandDescriptor,
    usage: TensorUsage,
    /// Made by [`Context::create_constant_tensor`]: never written.
    constant: bool,
    /// The owning context's identity.
    context: usize,
    /// `None` once destroyed.
    value: Mutex<Option<Tensor>>,
}

impl std::fmt::Debug for DeviceTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTensor")
            .field("desc", &self.inner.desc)
            .field("usage", &self.inner.usage)
            .field("constant", &self.inner.constant)
            .field("destroyed", &self.is_destroyed())
            .finish()
    }
}

impl DeviceTensor {
    pub fn desc(&self) -> &OperandDescriptor {
        &self.inner.desc
    }

    pub fn usage(&self) -> TensorUsage {
        self.inner.usage
    }

    pub fn is_constant(&self) -> bool {
        self.inner.constant
    }

    /// Releases the tensor's memory; every later use is an error. Work
    /// already queued that reads it has taken its value.
    pub fn destroy(&self) {
        *self.lock() = None;
    }

    pub fn is_destroyed(&self) -> bool {
        self.lock().is_none()
    }

    /// The value of a constant tensor, for `GraphBuilder::constant_tensor`
    /// (WebNN's `builder.constant(tensor)`; shares the bytes).
    pub fn constant_value(&self) -> Result<Tensor, RuntimeError> {
        if !self.inner.constant {
            return Err(tensor_error("only a constant tensor (create_constant_tensor) can be a graph constant"));
        }
        self.lock().clone().ok_or_else(destroyed)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Tensor>> {
        self.inner.value.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_same(&self, other: &DeviceTensor) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

fn tensor_error(rule: impl Into<String>) -> RuntimeError {
    RuntimeError::Tensor(rule.into())
}

fn destroyed() -> RuntimeError {
    RuntimeError::Destroyed("the tensor")
}

impl Context {
    /// This context's identity, shared by its clones.
    fn identity(&self) -> usize {
        Arc::as_ptr(&self.dispatcher) as usize
    }

    /// The dispatch thread, started by the first call that queues work.
    pub(crate) fn dispatcher(&self) -> Option<&Dispatcher> {
        self.dispatcher.get_or_init(Dispatcher::start).as_ref()
    }

    /// `createTensor(descriptor)`: a zero-filled tensor of this context.
    pub fn create_tensor(&self, desc: OperandDescriptor, usage: TensorUsage) -> Result<DeviceTensor, RuntimeError> {
        kiln_ir::Graph::check_descriptor(&desc).map_err(|rule| tensor_error(format!("descriptor {desc}: {rule}")))?;
        let len = desc.byte_length();
        let value = Tensor::from_bytes(desc.clone(), vec![0; len]).map_err(|e| tensor_error(e.to_string()))?;
        Ok(self.device_tensor(value, usage, false))
    }

    /// `createConstantTensor(descriptor, data)`: a tensor that is never
    /// written, for graph constants ([`DeviceTensor::constant_value`]).
    pub fn create_constant_tensor(&self, value: Tensor) -> Result<DeviceTensor, RuntimeError> {
        let desc = value.desc().clone();
        kiln_ir::Graph::check_descriptor(&desc).map_err(|rule| tensor_error(format!("descriptor {desc}: {rule}")))?;
        Ok(self.device_tensor(value, TensorUsage::default(), true))
    }

    fn device_tensor(&self, value: Tensor, usage: TensorUsage, constant: bool) -> DeviceTensor {
        let state = TensorState {
            desc: value.desc().clone(),
            usage,
            constant,
            context: self.identity(),
            value: Mutex::new(Some(value)),
        };
        DeviceTensor { inner: Arc::new(state) }
    }

    /// A tensor of this context that is not destroyed.
    fn check_tensor(&self, t: &DeviceTensor, what: &str) -> Result<(), RuntimeError> {
        if t.inner.context != self.identity() {
            return Err(tensor_error(format!("{what}: the tensor belongs to another context")));
        }
        if t.is_destroyed() {
            return Err(RuntimeError::Destroyed("the tensor"));
        }
        Ok(())
    }

    /// `writeTensor(tensor, data)`: copies `data` (the tensor's byte length
    /// exactly) and queues the write after the work already queued.
    pub fn write_tensor(&self, t: &DeviceTensor, data: &[u8]) -> Result<(), RuntimeError> {
        self.check_tensor(t, "write_tensor")?;
        if t.inner.constant || !t.inner.usage.writable {
            return Err(tensor_error("write_tensor: the tensor was not created writable"));
        }
        let value = Tensor::from_bytes(t.inner.desc.clone(), data.to_vec())
            .map_err(|e| tensor_error(format!("write_tensor: {} bytes for {}: {e}", data.len(), t.inner.desc)))?;
        let target = t.clone();
        // The write cannot fail once queued (a tensor destroyed meanwhile
        // simply stays destroyed): nothing waits for it.
        drop(Dispatcher::submit(self.dispatcher(), move || {
            let mut slot = target.lock();
            if slot.is_some() {
                *slot = Some(value);
            }
            Ok(())
        }));
        Ok(())
    }

    /// `readTensor(tensor)`: resolves to the tensor's value after the work
    /// queued before it.
    pub fn read_tensor(&self, t: &DeviceTensor) -> Dispatch<Tensor> {
        if let Err(e) = self.check_tensor(t, "read_tensor") {
            return Dispatch::ready(Err(e));
        }
        if !t.inner.usage.readable {
            return Dispatch::ready(Err(tensor_error("read_tensor: the tensor was not created readable")));
        }
        let source = t.clone();
        Dispatcher::submit(self.dispatcher(), move || source.lock().clone().ok_or_else(destroyed))
    }

    /// `dispatch(graph, inputs, outputs)`: queues `graph` on the input
    /// tensors, its results left in the output tensors (every graph input
    /// and output named exactly once, descriptors equal). The returned
    /// future resolves when the run is done (to its error, if it fails);
    /// the outputs can be read without waiting for it.
    pub fn dispatch_tensors(
        &self,
        graph: &CompiledGraph,
        inputs: &[(&str, &DeviceTensor)],
        outputs: &[(&str, &DeviceTensor)],
    ) -> Result<Dispatch<()>, RuntimeError> {
        graph.check_live()?;
        let g = graph.graph();
        let bind = |list: &[(&str, &DeviceTensor)], what: &str, names: Vec<(String, OperandDescriptor)>| {
            for (name, t) in list {
                self.check_tensor(t, &format!("{what} `{name}`"))?;
                let Some((_, desc)) = names.iter().find(|(n, _)| n == name) else {
                    let known: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
                    return Err(tensor_error(format!("`{name}` is not a graph {what} (the graph's: {})", known.join(", "))));
                };
                if t.desc() != desc {
                    return Err(tensor_error(format!("{what} `{name}`: the tensor is {}, the graph wants {desc}", t.desc())));
                }
            }
            for (name, _) in &names {
                match list.iter().filter(|(n, _)| n == name).count() {
                    1 => {}
                    0 => return Err(tensor_error(format!("graph {what} `{name}` has no tensor"))),
                    _ => return Err(tensor_error(format!("graph {what} `{name}` is given more than once"))),
                }
            }
            Ok(())
        };
        let input_names = g.inputs().iter().map(|&id| (g.input_name(id).unwrap_or_default().to_string(), g.desc(id).clone()));
        bind(inputs, "input", input_names.collect())?;
        let output_names = g.outputs().iter().map(|(n, id)| (n.clone(), g.desc(*id).clone()));
        bind(outputs, "output", output_names.collect())?;
        for (i, (name, t)) in outputs.iter().enumerate() {
            if t.is_constant() {
                return Err(tensor_error(format!("output `{name}`: a constant tensor cannot be written")));
            }
            if let Some((other, _)) = inputs.iter().find(|(_, x)| x.is_same(t)) {
                return Err(tensor_error(format!("output `{name}` is also input `{other}`")));
            }
            if let Some((other, _)) = outputs[..i].iter().find(|(_, x)| x.is_same(t)) {
                return Err(tensor_error(format!("output `{name}` is also output `{other}`")));
            }
        }
        let (ctx, graph) = (self.clone(), graph.clone());
        let inputs: Vec<(String, DeviceTensor)> = inputs.iter().map(|(n, t)| (n.to_string(), (*t).clone())).collect();
        let outputs: Vec<(String, DeviceTensor)> = outputs.iter().map(|(n, t)| (n.to_string(), (*t).clone())).collect();
        Ok(Dispatcher::submit(self.dispatcher(), move || {
            let values = inputs
                .iter()
                .map(|(n, t)| Ok((n.as_str(), t.lock().clone().ok_or_else(destroyed)?)))
                .collect::<Result<Vec<_>, RuntimeError>>()?;
            let feeds: Vec<(&str, &Tensor)> = values.iter().map(|(n, t)| (*n, t)).collect();
            for (name, value) in ctx.compute(&graph, &feeds)? {
                if let Some((_, t)) = outputs.iter().find(|(n, _)| *n == name) {
                    let mut slot = t.lock();
                    if slot.is_some() {
                        *slot = Some(value);
                    }
                }
            }
            Ok(())
        }))
    }
}

//! `kiln bench MODEL --compare onnxruntime|litert` (the command line's):
//! kiln and a reference runtime on the same model file, the same inputs and
//! the same thread count, timed in interleaved rounds in one run.
//!
//! The reference runs in a Python interpreter that can import it (the
//! `onnxruntime` package, or `ai-edge-litert` for `.tflite` files), driven
//! by `scripts/bench_reference.py`, which is compiled into the binary. The
//! interpreter: `--python PATH`, else `$KILN_PYTHON`, else the first of
//! `python3` on the PATH and `target/bench-venv/bin/python` (the
//! repository's benchmark environment, made by scripts/fetch_onnx_data.sh)
//! that imports the package.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::Value as Json;

/// The driver script, run as `python -c SCRIPT ENGINE MODEL THREADS DIR`.
const DRIVER: &str = include_str!("../scripts/bench_reference.py");

/// The environment variable naming the interpreter.
pub const PYTHON_ENV: &str = "KILN_PYTHON";

/// A reference runtime `kiln bench --compare` can measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    OnnxRuntime,
    LiteRt,
}

impl std::str::FromStr for Engine {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "onnxruntime" => Ok(Engine::OnnxRuntime),
            "litert" => Ok(Engine::LiteRt),
            _ => Err(format!("--compare `{s}`: expected onnxruntime (.onnx models) or litert (.tflite models)")),
        }
    }
}

impl Engine {
    /// The name in the driver's protocol and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Engine::OnnxRuntime => "onnxruntime",
            Engine::LiteRt => "litert",
        }
    }

    /// The Python module that must import, and the pip package that has it.
    fn module(self) -> (&'static str, &'static str) {
        match self {
            Engine::OnnxRuntime => ("onnxruntime", "onnxruntime"),
            Engine::LiteRt => ("ai_edge_litert", "ai-edge-litert"),
        }
    }

    /// Checks that `model` is a file this engine reads.
    pub fn check_model(self, model: &Path) -> Result<(), String> {
        let ext = model.extension().and_then(|e| e.to_str()).unwrap_or("");
        match (self, ext) {
            (Engine::OnnxRuntime, "onnx") | (Engine::LiteRt, "tflite") => Ok(()),
            (Engine::OnnxRuntime, "tflite") => {
                Err(format!("--compare onnxruntime needs an .onnx model; for {} use --compare litert", model.display()))
            }
            (Engine::OnnxRuntime, _) => Err(format!("--compare onnxruntime needs an .onnx model, not {}", model.display())),
            (Engine::LiteRt, _) => Err(format!("--compare litert needs a .tflite model, not {}", model.display())),
        }
    }
}

/// The interpreter to run `engine` with: `explicit` (from `--python`) or
/// `$KILN_PYTHON` if set (it must import the engine), else the first
/// default candidate that does. The error lists every interpreter tried
/// and why it failed.
pub fn find_python(engine: Engine, explicit: Option<&Path>) -> Result<PathBuf, String> {
    let chosen = explicit.map(|p| (p.to_path_buf(), "--python")).or_else(|| {
        std::env::var_os(PYTHON_ENV).filter(|v| !v.is_empty()).map(|v| (PathBuf::from(v), PYTHON_ENV))
    });
    let candidates: Vec<PathBuf> = match &chosen {
        Some((path, _)) => vec![path.clone()],
        None => {
            let venv = PathBuf::from("target/bench-venv/bin/python");
            std::iter::once(PathBuf::from("python3")).chain(venv.is_file().then_some(venv)).collect()
        }
    };
    let (module, package) = engine.module();
    let mut failures = Vec::new();
    for python in candidates {
        match imports(&python, module) {
            Ok(()) => return Ok(python),
            Err(why) => failures.push(format!("{}: {why}", python.display())),
        }
    }
    let (who, hint) = match chosen {
        Some((_, from)) => (format!("the interpreter of {from} cannot"), String::new()),
        None => ("no interpreter tried can".to_string(), format!("; or name one with --python PATH or {PYTHON_ENV}=PATH")),
    };
    Err(format!(
        "--compare {}: {who} import `{module}` and numpy (pip install {package} numpy{hint}):\n  {}",
        engine.name(),
        failures.join("\n  ")
    ))
}

/// Whether `python` imports `module` and numpy; the error says why not.
fn imports(python: &Path, module: &str) -> Result<(), String> {
    let out = Command::new(python)
        .args(["-c", &format!("import numpy, {module}")])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run it: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(err.lines().rev().find(|l| !l.trim().is_empty()).map_or_else(|| format!("exited with {}", out.status), str::to_string))
}

/// A running reference: the driver process, ready to time runs.
pub struct Reference {
    child: Child,
    /// Commands to the driver; closing it ends the driver.
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// The engine's version, as it reports it.
    pub version: String,
    /// The time the engine took to load the model, in milliseconds.
    pub compile_ms: f64,
}

impl Reference {
    /// Starts `engine` in `python` on `model` with `threads` threads and
    /// the inputs in `inputs` (written to `dir` as .npy files for it).
    pub fn start(
        engine: Engine,
        python: &Path,
        model: &Path,
        threads: usize,
        inputs: &[(String, kiln::Tensor)],
        dir: &Path,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut listed = Vec::new();
        for (k, (name, tensor)) in inputs.iter().enumerate() {
            let file = format!("input_{k}.npy");
            std::fs::write(dir.join(&file), kiln::npy::to_bytes(tensor)).map_err(|e| format!("{}: {e}", dir.display()))?;
            listed.push(serde_json::json!({"name": name, "file": file}));
        }
        std::fs::write(dir.join("inputs.json"), Json::from(listed).to_string()).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut child = Command::new(python)
            .arg("-c")
            .arg(DRIVER)
            .arg(engine.name())
            .arg(model)
            .arg(threads.to_string())
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{}: {e}", python.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the driver's pipes are missing".to_string());
        };
        let mut reference = Reference { child, stdin: Some(stdin), stdout: BufReader::new(stdout), version: String::new(), compile_ms: 0.0 };
        let ready = reference.reply().map_err(|e| format!("{} on {}: {e}", engine.name(), model.display()))?;
        reference.version = ready["version"].as_str().unwrap_or("?").to_string();
        reference.compile_ms = ready["compile_ms"].as_f64().unwrap_or(f64::NAN);
        Ok(reference)
    }

    /// `n` timed runs, in milliseconds.
    pub fn time(&mut self, n: usize) -> Result<Vec<f64>, String> {
        // A write to the pipe of a driver that has ended would end kiln
        // (SIGPIPE): look first.
        if let Ok(Some(status)) = self.child.try_wait() {
            return Err(format!("the driver ended ({status}; its messages are above)"));
        }
        let stdin = self.stdin.as_mut().ok_or("the driver's input is closed")?;
        writeln!(stdin, "run {n}").and_then(|()| stdin.flush()).map_err(|e| format!("the driver stopped: {e}"))?;
        let reply = self.reply()?;
        let times = reply["times_ms"].as_array().ok_or_else(|| format!("unexpected reply {reply}"))?;
        times.iter().map(|t| t.as_f64().ok_or_else(|| format!("unexpected time {t}"))).collect()
    }

    /// The driver's next line, as JSON; its `error` field as an error.
    fn reply(&mut self) -> Result<Json, String> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) | Err(_) => return Err("the driver ended without an answer (its messages are above)".to_string()),
            Ok(_) => {}
        }
        let reply: Json = serde_json::from_str(&line).map_err(|_| format!("unexpected driver output: {}", line.trim_end()))?;
        match reply.get("error").and_then(Json::as_str) {
            Some(e) => Err(e.to_string()),
            None => Ok(reply),
        }
    }
}

impl Drop for Reference {
    /// Closes the driver's input (it ends at the end of its input) and
    /// waits for it.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// `runs` split into `rounds` nearly equal parts (the first ones one
/// larger), none empty.
pub fn round_sizes(runs: usize, rounds: usize) -> Vec<usize> {
    let rounds = rounds.clamp(1, runs.max(1));
    (0..rounds).map(|r| runs / rounds + usize::from(r < runs % rounds)).filter(|&n| n > 0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_split_the_runs() {
        assert_eq!(round_sizes(20, 5), [4, 4, 4, 4, 4]);
        assert_eq!(round_sizes(7, 5), [2, 2, 1, 1, 1]);
        assert_eq!(round_sizes(3, 5), [1, 1, 1]);
        assert_eq!(round_sizes(1, 5), [1]);
    }

    #[test]
    fn engines_check_the_model_kind() {
        assert!(Engine::OnnxRuntime.check_model(Path::new("m.onnx")).is_ok());
        assert!(Engine::LiteRt.check_model(Path::new("m.tflite")).is_ok());
        assert!(Engine::OnnxRuntime.check_model(Path::new("m.tflite")).unwrap_err().contains("--compare litert"));
        assert!(Engine::LiteRt.check_model(Path::new("m.webnn")).unwrap_err().contains("needs a .tflite model"));
        assert!("ort".parse::<Engine>().unwrap_err().contains("expected onnxruntime"));
    }
}

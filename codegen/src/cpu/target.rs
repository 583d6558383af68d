//! Code generation targets: an architecture and an explicit feature level,
//! whatever the host, so that emitted code is reproducible; or the host's
//! own (`native`, detected by cranelift-native).

use std::fmt;
use std::str::FromStr;

use cranelift_codegen::isa::{self, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use target_lexicon::{Aarch64Architecture, Architecture, Environment, OperatingSystem, Triple};

use super::CodegenError;

/// An instruction set kiln generates code for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Arch {
    X86_64,
    /// 64-bit Arm with NEON (Cranelift's 128-bit vectors).
    Aarch64,
}

/// A feature level within an architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Features {
    /// x86-64 with SSE4.2, or aarch64 with NEON: Cranelift 128-bit code only.
    Baseline,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// x86-64 with AVX-512 F, VL, DQ and BW.
    Avx512,
}

/// A target: the architecture and its feature level, for Linux (ELF,
/// System V calling convention on x86-64, AAPCS64 on aarch64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub arch: Arch,
    pub features: Features,
}

/// What `FromStr` accepts, for error messages.
const KNOWN: &str = "native, x86_64, x86_64+avx2, x86_64+avx512, aarch64, \
or a triple such as x86_64-unknown-linux-gnu+avx2 or aarch64-unknown-linux-gnu";

impl Target {
    /// An x86-64 target at `features`.
    pub const fn x86_64(features: Features) -> Self {
        Target { arch: Arch::X86_64, features }
    }

    /// The aarch64 (NEON) target.
    pub const fn aarch64() -> Self {
        Target { arch: Arch::Aarch64, features: Features::Baseline }
    }

    /// Whether the code generator has direct convolution kernels for this
    /// level (see `kiln_passes::LowerOptions::direct_convolution`): the
    /// AVX-512 window sums.
    pub fn direct_convolution(&self) -> bool {
        self.features == Features::Avx512
    }

    /// The architecture of this machine, if kiln generates code for it.
    fn host_arch() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    /// The best level this machine runs, from the features cranelift-native
    /// detects. On a machine of another architecture: x86-64 SSE4.2, which
    /// listings and object files can target but [`Target::is_host_compatible`]
    /// says it cannot run.
    pub fn host() -> Self {
        if Target::host_arch() == Some(Arch::Aarch64) {
            return Target::aarch64();
        }
        let flags = cranelift_native::builder()
            .ok()
            .and_then(|b| b.finish(settings::Flags::new(settings::builder())).ok())
            .map_or_else(Vec::new, |isa| isa.isa_flags());
        let has = |name: &str| flags.iter().any(|v| v.name == name && v.as_bool() == Some(true));
        let features = if ["has_avx512f", "has_avx512vl", "has_avx512dq"].iter().all(|f| has(f))
            && is_avx512bw()
        {
            Features::Avx512
        } else if has("has_avx2") && has("has_fma") {
            Features::Avx2
        } else {
            Features::Baseline
        };
        Target::x86_64(features)
    }

    /// Every level this machine can run, lowest first (for tests).
    pub fn host_levels() -> Vec<Target> {
        let host = Target::host();
        [Features::Baseline, Features::Avx2, Features::Avx512]
            .into_iter()
            .map(|features| Target { arch: host.arch, features })
            .filter(Target::is_host_compatible)
            .collect()
    }

    /// Whether code for this target runs on this machine.
    pub fn is_host_compatible(&self) -> bool {
        let host = Target::host();
        Target::host_arch() == Some(self.arch) && self.features <= host.features
    }

    /// The target triple (Linux, GNU environment).
    pub fn triple(&self) -> Triple {
        let name = match self.arch {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Aarch64 => "aarch64-unknown-linux-gnu",
        };
        Triple::from_str(name).expect("a valid triple")
    }

    /// The Cranelift ISA with exactly this level's flags, for the JIT and
    /// listings (absolute addresses).
    pub fn isa(&self) -> Result<OwnedTargetIsa, CodegenError> {
        self.isa_with(false)
    }

    /// The ISA; `pic` for position-independent code (object files).
    pub(super) fn isa_with(&self, pic: bool) -> Result<OwnedTargetIsa, CodegenError> {
        let err = |e: &dyn fmt::Display| CodegenError::Target(e.to_string());
        let mut shared = settings::builder();
        shared.set("opt_level", "speed").map_err(|e| err(&e))?;
        // Cranelift's IR verifier checks every function before code
        // generation; debug builds (the tests) keep it, release builds skip
        // it (it took about a tenth of compile time).
        let verify = if cfg!(debug_assertions) { "true" } else { "false" };
        shared.set("enable_verifier", verify).map_err(|e| err(&e))?;
        shared.set("is_pic", if pic { "true" } else { "false" }).map_err(|e| err(&e))?;
        let mut b = isa::lookup(self.triple()).map_err(|e| err(&e))?;
        let mut flags = Vec::new();
        if self.arch == Arch::X86_64 {
            flags.extend(["has_sse3", "has_ssse3", "has_sse41", "has_sse42", "has_popcnt"]);
            if self.features >= Features::Avx2 {
                flags.extend(["has_avx", "has_avx2", "has_fma", "has_bmi1", "has_bmi2", "has_lzcnt"]);
            }
            if self.features >= Features::Avx512 {
                flags.extend(["has_avx512f", "has_avx512vl", "has_avx512dq"]);
            }
        }
        for f in flags {
            b.enable(f).map_err(|e| err(&e))?;
        }
        b.finish(settings::Flags::new(shared)).map_err(|e| err(&e))
    }
}

/// AVX-512 BW, which the micro-kernels use and Cranelift has no flag for.
fn is_avx512bw() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.arch, self.features) {
            (Arch::Aarch64, _) => "aarch64",
            (Arch::X86_64, Features::Baseline) => "x86_64",
            (Arch::X86_64, Features::Avx2) => "x86_64+avx2",
            (Arch::X86_64, Features::Avx512) => "x86_64+avx512",
        })
    }
}

impl FromStr for Target {
    type Err = CodegenError;

    /// `native`, or an architecture or Linux triple followed by `+feature`s:
    /// `x86_64`, `x86_64+avx2`, `x86_64-unknown-linux-gnu+avx512`,
    /// `aarch64`, `aarch64-unknown-linux-gnu`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "native" {
            return Ok(Target::host());
        }
        let unknown = |what: String| CodegenError::Target(format!("{what} (known targets: {KNOWN})"));
        let mut parts = s.split('+');
        let name = parts.next().unwrap_or("");
        let triple = Triple::from_str(name).map_err(|e| unknown(format!("unknown target `{s}`: {e}")))?;
        if !matches!(triple.operating_system, OperatingSystem::Linux | OperatingSystem::Unknown) {
            return Err(unknown(format!("target `{s}`: only Linux (ELF) is supported")));
        }
        let mut target = match triple.architecture {
            Architecture::X86_64 => Target::x86_64(Features::Baseline),
            Architecture::Aarch64(Aarch64Architecture::Aarch64) => Target::aarch64(),
            _ => return Err(unknown(format!("unknown target `{s}`: architecture {}", triple.architecture))),
        };
        // The code is little-endian LP64 for the GNU C library's ABI.
        if !matches!(triple.environment, Environment::Gnu | Environment::Unknown) {
            return Err(unknown(format!("target `{s}`: environment {} (kiln generates LP64 code for gnu)", triple.environment)));
        }
        for feature in parts {
            target.features = match (target.arch, feature) {
                (Arch::X86_64, "avx2") => target.features.max(Features::Avx2),
                (Arch::X86_64, "avx512") => Features::Avx512,
                (Arch::X86_64, _) => {
                    return Err(unknown(format!("unknown feature `{feature}` in `{s}` (x86_64 features: avx2, avx512)")));
                }
                (Arch::Aarch64, _) => {
                    return Err(unknown(format!("unknown feature `{feature}` in `{s}` (aarch64 has none: NEON is always on)")));
                }
            };
        }
        Ok(target)
    }
}

//! Code generation arrives with the native backend (issue 3).

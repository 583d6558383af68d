//! Graph passes arrive with the native backend (issue 3).

//! Shared runtime for FerroLB binaries.

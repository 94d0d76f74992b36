//! ferrolbctl.

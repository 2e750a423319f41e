//! Test harness for driving berth end to end.

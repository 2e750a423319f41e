//! Unit tests on fake trees and parsers; real-kernel tests in `real`.
use super::*;

//! junction-scgi: placeholder, being written.

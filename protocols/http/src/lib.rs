//! junction-http: placeholder, being written.

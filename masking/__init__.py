"""Schema-less detection and masking of sensitive values in results, in flight."""

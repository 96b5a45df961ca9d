"""The record: the anonymised report, the register of requests, a case's history, and retention."""

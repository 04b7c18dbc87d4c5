"""Batch predictions into a SQL database for BI (PostgreSQL): settings, the pure core, two drivers."""

"""Where tala keeps things: live sessions in Redis (state.py), results in SQL (sql.py)."""

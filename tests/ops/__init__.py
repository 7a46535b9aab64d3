"""Operations tests: real gunicorn processes, real sockets, real stores (marked slow)."""

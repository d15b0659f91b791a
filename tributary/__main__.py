from tributary.cli import app

app(prog_name="tributary")

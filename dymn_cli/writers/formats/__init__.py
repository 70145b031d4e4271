"""The output formats (`--format`), one module per writer: CSV, JSON, JSON Lines, Parquet and the table.

Each writes through the output layer (`dymn_cli.writers.targets`, `output_file`, `record_log`; see the
README, Reliability): CSV, JSON, Parquet and the table go to a temporary file beside the target and are
renamed into place when the run ends (also when it is interrupted: finished results are kept); JSON
Lines is appended and flushed one whole record at a time, so that a killed run keeps every finished
line. Each can read an earlier output of its format back one input at a time (bounded memory), with the
model and settings that wrote it. `dymn_cli.writers.registry` names them.
"""

from dymn_cli.cli import main

main()

from dymn_cli.cli.main import main

main()

from stageless.cli import main

main()

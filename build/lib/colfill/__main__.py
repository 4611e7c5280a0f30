from colfill.cli import main

main()

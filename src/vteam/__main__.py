from vteam.cli import main

main()

from vteam.runner.main import main

main()

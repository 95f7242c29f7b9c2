from pcm_demo.run import main

raise SystemExit(main())

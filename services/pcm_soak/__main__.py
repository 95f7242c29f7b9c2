from pcm_soak.run import main

raise SystemExit(main())

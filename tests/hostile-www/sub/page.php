<?php
require __DIR__.'/../env.php';

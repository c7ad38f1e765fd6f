<?php
require __DIR__.'/../pathinfo.php';
